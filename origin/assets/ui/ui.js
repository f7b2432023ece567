// The dashboard's own script: every page works without it; it adds the CSRF header to htmx requests,
// asks for confirmation where a form says so, and uploads files with a progress bar.
"use strict";

(function () {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";

  // htmx requests carry the session's CSRF token in a header.
  document.addEventListener("htmx:configRequest", (event) => {
    if (csrf) event.detail.headers["X-CSRF-Token"] = csrf;
  });

  // <form data-confirm="..."> asks before it submits (no inline script: CSP forbids it).
  document.addEventListener("submit", (event) => {
    const form = event.target;
    const question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  }, true);

  // <form data-upload="url-template"> sends its file as the request body with XMLHttpRequest, whose upload
  // events give a real progress bar; the URL's {name} is filled from the form's "name" field.
  function setUp(form) {
    const bar = form.querySelector("progress");
    const line = form.querySelector(".progress-line");
    const label = form.querySelector("[data-progress-text]");
    const result = document.getElementById(form.getAttribute("data-result"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const file = form.querySelector('input[type="file"]').files[0];
      if (!file) return;
      const nameField = form.querySelector('[name="name"]');
      const url = form.getAttribute("data-upload").replace("{name}", encodeURIComponent(nameField ? nameField.value : ""));
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.setRequestHeader("Content-Type", "text/csv");
      xhr.setRequestHeader("HX-Request", "true");
      line.hidden = false;
      bar.value = 0;
      bar.max = file.size || 1;
      const button = form.querySelector('button[type="submit"]');
      button.disabled = true;
      xhr.upload.addEventListener("progress", (e) => {
        if (!e.lengthComputable) return;
        bar.max = e.total;
        bar.value = e.loaded;
        label.textContent = Math.floor((100 * e.loaded) / e.total) + "%";
      });
      xhr.upload.addEventListener("load", () => {
        label.textContent = form.getAttribute("data-processing") || "…";
      });
      xhr.addEventListener("loadend", () => {
        button.disabled = false;
        if (xhr.status === 0) {
          result.innerHTML = "";
          const p = document.createElement("p");
          p.className = "notice bad";
          p.textContent = form.getAttribute("data-network-error") || "Network error";
          result.appendChild(p);
          return;
        }
        // The server answers with an HTML fragment of ours (escaped by its templates).
        result.innerHTML = xhr.responseText;
        if (xhr.status < 300) {
          label.textContent = "100%";
          const refresh = form.getAttribute("data-refresh");
          if (refresh && window.htmx) window.htmx.trigger(document.getElementById(refresh), "refresh");
        }
      });
      xhr.send(file);
    });
  }

  function init() {
    document.querySelectorAll("form[data-upload]").forEach(setUp);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
