// Browser page for the classifier: choose or drop an image, POST it to /predict as multipart,
// show the top-k as labelled bars, the latency, the request id, or the error message.
"use strict";

const $ = (id) => document.getElementById(id);
let chosen = null;

function showWeightsWarning(pretrained) {
  $("weights-warning").hidden = pretrained !== false;
}

// The served model's classes (from /info): start the top-k input at the server's default
// (DEFAULT_TOP_K, never a number of the page's own), bound it by the class count, and name the
// labels of a small custom model.
function showModel(meta) {
  const topK = $("top-k");
  const limits = meta && meta.limits && meta.limits.top_k ? meta.limits.top_k : null;
  if (limits) {
    topK.max = String(limits.max);
    if (!topK.value && limits.default) topK.value = String(limits.default);
    if (Number(topK.value) > limits.max) topK.value = String(limits.max);
  }
  const classes = meta && meta.classes;
  if (!classes || !$("model-info")) return;
  const names = classes.labels.length <= 20 && !classes.labels_truncated ? `: ${classes.labels.join(", ")}` : "";
  $("model-info").textContent = `Model: ${classes.count} classes${names} (labels: ${classes.label_source})`;
}

function choose(file) {
  chosen = file || null;
  $("submit").disabled = !chosen;
  $("error").hidden = true;
  $("predictions").replaceChildren();
  $("meta").textContent = "";
  const preview = $("preview");
  if (chosen && chosen.type.startsWith("image/")) {
    preview.src = URL.createObjectURL(chosen);
    preview.hidden = false;
  } else {
    preview.hidden = true;
  }
}

function render(body, latencyMs) {
  const list = $("predictions");
  list.replaceChildren();
  for (const p of body.predictions) {
    const item = document.createElement("li");
    const row = document.createElement("div");
    row.className = "row";
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = p.label;
    const value = document.createElement("span");
    value.className = "probability";
    value.textContent = (p.probability * 100).toFixed(2) + " %";
    row.append(label, value);
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = Math.max(p.probability * 100, 0.5) + "%";
    item.append(row, bar);
    list.append(item);
  }
  $("meta").textContent = `${body.image.width}×${body.image.height} ${body.image.format} · ` +
    `${latencyMs.toFixed(0)} ms round trip (model ${body.timing_ms.inference} ms) · request ${body.request_id}`;
  showWeightsWarning(body.model.pretrained);
}

function renderError(message, requestId) {
  $("error").textContent = message;
  $("error").hidden = false;
  $("meta").textContent = requestId ? `request ${requestId}` : "";
}

async function classify(event) {
  event.preventDefault();
  if (!chosen) return;
  const form = new FormData();
  form.append("file", chosen, chosen.name);
  // An empty field leaves top_k to the server's default.
  if ($("top-k").value) form.append("top_k", $("top-k").value);
  $("submit").disabled = true;
  const started = performance.now();
  try {
    const response = await fetch("/predict", { method: "POST", body: form });
    const body = await response.json().catch(() => null);
    if (response.ok && body) {
      render(body, performance.now() - started);
    } else {
      const error = body && body.error ? body.error : { message: `HTTP ${response.status}` };
      renderError(`${error.message} (${error.code || response.status})`, error.request_id);
      $("predictions").replaceChildren();
    }
  } catch (err) {
    renderError("The service could not be reached.", null);
  } finally {
    $("submit").disabled = !chosen;
  }
}

window.addEventListener("DOMContentLoaded", () => {
  $("file").addEventListener("change", (e) => choose(e.target.files[0]));
  $("form").addEventListener("submit", classify);
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) choose(e.dataTransfer.files[0]);
  });
  fetch("/health").then((r) => r.json()).then((b) => showWeightsWarning(b.pretrained)).catch(() => {});
  fetch("/info").then((r) => r.json()).then((b) => showModel(b.default[0].customizedMetadata)).catch(() => {});
});
