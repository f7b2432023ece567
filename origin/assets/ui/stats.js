// Draws the stats page's chart with uPlot from the data the server put in data-chart; the tables beside
// it hold the same numbers for readers without JavaScript.
"use strict";

(function () {
  const COLOURS = ["#0b4f8a", "#d9822b", "#1f7a45", "#a32020", "#6a4c93", "#5b6b7a"];

  function draw() {
    const box = document.getElementById("stats-chart");
    if (!box || !window.uPlot) return;
    const data = JSON.parse(box.getAttribute("data-chart"));
    const label = box.getAttribute("data-label");
    const series = [{}].concat(data.series.map((s, i) => ({
      label: s.label,
      stroke: COLOURS[i % COLOURS.length],
      width: 2,
      points: { show: true, size: 5 },
      spanGaps: false,
    })));
    const options = {
      width: Math.max(300, box.clientWidth - 16),
      height: 300,
      series: series,
      axes: [{}, { label: label, size: 60 }],
      scales: { x: { time: true } },
    };
    const values = [data.x].concat(data.series.map((s) => s.values));
    box.innerHTML = "";
    new window.uPlot(options, values, box);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
