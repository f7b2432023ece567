// The campaign editor, live: on every change the form is decoded and validated by the core itself,
// compiled to WebAssembly (editor-wasm/, the same functions the server runs on save), and the errors are
// shown next to the fields they name and the popup of each variant is redrawn, with no round trip. The page
// works without this script: the form submits and the server's errors appear in the same places.
// Errors are told in the person's language: the core gives each a code and parameters, and the page gives
// the texts of the codes (data-validation, filled as the server fills them). Start and end are wall-clock
// times of the chosen zone: changing the zone keeps what is typed and moves the instant, so the labels say
// the zone and a hint under each time says its UTC instant.
"use strict";

const form = document.getElementById("campaign-form");
const words = document.getElementById("editor-words");
const texts = words ? JSON.parse(words.dataset.validation || "{}") : {};

// A lifecycle form asks first (ui.js shows the question); once answered, it says so to the server, which
// otherwise answers with a page asking the same question.
document.addEventListener("submit", (event) => {
  const lifecycle = event.target.closest(".lifecycle form");
  if (!lifecycle || event.defaultPrevented || lifecycle.querySelector('[name="confirmed"]')) return;
  const confirmed = document.createElement("input");
  confirmed.type = "hidden";
  confirmed.name = "confirmed";
  confirmed.value = "yes";
  lifecycle.appendChild(confirmed);
});

if (form && words && !form.querySelector("fieldset.sections").disabled) {
  start().catch((error) => {
    // The server still validates on save; say that live checking is off rather than pretend.
    setStatus(words.dataset.unavailable, "bad");
    console.error("editor: the WebAssembly validation could not start", error);
  });
}

async function start() {
  const glue = await import(form.dataset.wasmJs);
  const bytes = await (await fetch(form.dataset.wasm)).arrayBuffer();
  await glue.default({ module_or_path: bytes });
  const zones = Array.from(document.querySelectorAll("#zones option"), (option) => option.value);
  const knownZones = new Set(zones);
  const editor = new glue.Editor(BigInt(form.dataset.campaignId || "0"), form.dataset.segments || "[]",
    JSON.stringify(zones));
  const check = () => {
    const pairs = [];
    for (const [name, value] of new FormData(form)) {
      if (name !== "csrf") pairs.push([name, String(value)]);
    }
    const report = JSON.parse(editor.checkForm(JSON.stringify(pairs)));
    showErrors(report.errors);
    showZone(report, knownZones);
    showPreview(report.preview);
    if (report.errors.length === 0) setStatus(words.dataset.valid, "ok");
    else setStatus(words.dataset.invalid.replace("{0}", report.errors.length), "bad");
  };
  form.addEventListener("input", check);
  form.addEventListener("change", check);
  for (const button of form.querySelectorAll("[data-add-row]")) {
    button.hidden = false;
    button.addEventListener("click", () => {
      addRow(button.dataset.addRow);
      check();
    });
  }
  form.dataset.live = "on";
  check();
}

function setStatus(text, kind) {
  const status = document.getElementById("live-status");
  if (!status) return;
  status.textContent = text;
  status.dataset.kind = kind;
}

// An error in the person's language: its code's text with each {parameter} filled in; the API's English
// for a problem without a code (a body the browser could not even read).
function message(error) {
  const text = error.code && texts[error.code];
  if (!text) return error.message;
  return Object.entries(error.params || {}).reduce((filled, [name, value]) => filled.split(`{${name}}`).join(value), text);
}

// The zone the times are read in, beside their labels, and the UTC instant of each under it.
function showZone(report, zones) {
  const typed = form.querySelector('[name="schedule.time_zone"]').value.trim();
  const zone = zones.has(typed) ? typed : "UTC";
  for (const label of form.querySelectorAll("[data-zone-label]")) label.textContent = `(${zone})`;
  const failed = new Set(report.errors.map((error) => error.field));
  const schedule = report.spec && report.spec.schedule;
  for (const hint of form.querySelectorAll("[data-utc-of]")) {
    const field = hint.dataset.utcOf;
    const input = form.querySelector(`[name="${CSS.escape(field)}"]`);
    const instant = schedule && schedule[field.replace("schedule.", "")];
    const shown = zone !== "UTC" && instant && input.value.trim() !== "" && !failed.has(field);
    hint.hidden = !shown;
    if (shown) hint.textContent = words.dataset.utc.replace("{0}", instant.replace("T", " ").replace("Z", " UTC"));
  }
}

// The wrapper an error belongs to: the one named by its path, else its list's (`rules.countries[1]` shows
// at `rules.countries`); errors of no field on the page are listed in the summary only.
function home(field) {
  let path = field;
  for (;;) {
    const found = form.querySelector(`[data-field="${CSS.escape(path)}"]`);
    if (found) return found;
    const shorter = path.replace(/\[\d+\]$/, "");
    if (shorter === path) return null;
    path = shorter;
  }
}

function showErrors(errors) {
  for (const list of form.querySelectorAll("ul.errors")) list.replaceChildren();
  for (const invalid of form.querySelectorAll("[aria-invalid]")) invalid.removeAttribute("aria-invalid");
  for (const error of errors) {
    const wrapper = home(error.field);
    if (!wrapper) continue;
    const list = wrapper.querySelector(":scope > ul.errors");
    if (!list) continue;
    const item = document.createElement("li");
    item.textContent = message(error);
    list.appendChild(item);
    for (const input of wrapper.querySelectorAll(":scope > input, :scope > textarea")) {
      input.setAttribute("aria-invalid", "true");
    }
  }
  const summary = document.getElementById("error-summary");
  const items = summary.querySelector("ul");
  items.replaceChildren(...errors.map((error) => {
    const item = document.createElement("li");
    const code = document.createElement("code");
    code.textContent = error.field;
    item.append(code, " ", message(error));
    return item;
  }));
  summary.hidden = errors.length === 0;
}

function showPreview(variants) {
  const list = document.getElementById("preview-list");
  const template = document.getElementById("phone-template");
  list.replaceChildren(...variants.map((variant) => {
    const phone = template.content.firstElementChild.cloneNode(true);
    const slot = (name) => phone.querySelector(`[data-slot="${name}"]`);
    phone.dataset.variant = variant.key;
    slot("key").textContent = variant.key;
    slot("weight").textContent = words.dataset.weight.replace("{0}", variant.weight);
    const popup = variant.popup;
    if (!popup) {
      phone.querySelector(".popup:not(.holdout)").remove();
      slot("holdout").hidden = false;
      return phone;
    }
    slot("holdout").remove();
    slot("title").textContent = popup.title;
    slot("body").textContent = popup.body;
    if (popup.image_url) {
      slot("image").src = popup.image_url;
      slot("image").hidden = false;
    } else {
      slot("image").remove();
    }
    const label = popup.extra && popup.extra.button;
    if (label || popup.action_url) {
      slot("button").textContent = label || words.dataset.open;
      slot("button").hidden = false;
    } else {
      slot("button").remove();
    }
    if (popup.action_url) {
      slot("action").textContent = popup.action_url;
      slot("action").hidden = false;
    } else {
      slot("action").remove();
    }
    return phone;
  }));
}

// Adds an empty row of variants or windows, numbered after the last, as the server numbers them.
function addRow(prefix) {
  const rows = form.querySelector(`[data-rows="${CSS.escape(prefix)}"]`);
  const last = rows.lastElementChild;
  if (!last) return;
  const next = rows.children.length;
  const row = last.cloneNode(true);
  const renumber = (text) => text.replace(`${prefix}[${last.dataset.row}]`, `${prefix}[${next}]`);
  row.dataset.row = String(next);
  for (const element of row.querySelectorAll("[name], [id], [for], [data-field]")) {
    for (const attribute of ["name", "id", "for", "data-field"]) {
      if (element.hasAttribute(attribute)) element.setAttribute(attribute, renumber(element.getAttribute(attribute)));
    }
  }
  for (const input of row.querySelectorAll("input, textarea")) {
    if (input.type === "checkbox" || input.type === "radio") input.checked = false;
    else input.value = "";
  }
  for (const details of row.querySelectorAll("details")) details.open = false;
  const legend = row.querySelector("legend");
  if (legend) legend.textContent = legend.textContent.replace(/\d+/, String(next + 1));
  rows.appendChild(row);
}
