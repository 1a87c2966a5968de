#include "summarizer/web_page.hpp"

namespace summarizer {

std::string_view WebPageHtml() {
    static constexpr std::string_view kPage = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>summarizer</title>
<link rel="icon" href="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Crect width='16' height='16' rx='3' fill='%231f6feb'/%3E%3Cpath d='M4 5h8M4 8h8M4 11h5' stroke='white' stroke-width='1.6'/%3E%3C/svg%3E">
<style>
  :root { font-family: system-ui, sans-serif; color: #1b1f24; background: #f6f7f9; }
  main { max-width: 960px; margin: 2rem auto; padding: 0 1rem; }
  h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
  p.sub { margin: 0 0 1rem; color: #57606a; }
  textarea { width: 100%; min-height: 14rem; box-sizing: border-box; font: inherit; padding: .6rem;
             border: 1px solid #c9ced6; border-radius: 6px; background: #fff; }
  textarea.drop { border-color: #0969da; background: #eef5ff; }
  .row { display: flex; flex-wrap: wrap; gap: .75rem; align-items: center; margin: .75rem 0; }
  label { font-size: .9rem; color: #444; }
  .row.small { margin: .35rem 0 0; justify-content: space-between; font-size: .85rem; color: #57606a; }
  label.file { cursor: pointer; color: #0969da; }
  label.file input { position: absolute; width: 1px; height: 1px; opacity: 0; }
  label.file:focus-within { outline: 2px solid #0969da; outline-offset: 2px; }
  select, input { font: inherit; padding: .25rem; }
  button { font: inherit; padding: .45rem 1.1rem; border: 0; border-radius: 6px; background: #1f6feb; color: #fff; cursor: pointer; }
  button.secondary { background: #6e7781; }
  button:disabled, button.secondary:disabled { background: #d0d7de; color: #8c959f; cursor: default; }
  #meta { font-size: .9rem; color: #57606a; min-height: 1.2rem; }
  progress { width: 12rem; vertical-align: middle; }
  #summary { white-space: pre-wrap; background: #fff; border: 1px solid #d0d7de; border-radius: 6px;
             padding: .8rem; min-height: 6rem; line-height: 1.55; }
  #error { color: #cf222e; white-space: pre-wrap; }
  table { border-collapse: collapse; font-size: .85rem; margin-top: .75rem; }
  td { padding: .15rem .8rem .15rem 0; }
  td:first-child { color: #57606a; }
</style>
</head>
<body>
<main>
  <h1>summarizer</h1>
  <p class="sub">Paste a text or drop a .txt file; the summary streams in as the model writes it. A long text
    runs as a job: it goes on if you close or reload the page (its id is in the address), and you see its progress.</p>
  <textarea id="text" placeholder="Paste the text to summarize, or drop a text file here"></textarea>
  <div class="row small">
    <label class="file">Open a text file… <input id="file" type="file" accept=".txt,.md,.csv,.log,text/*"></label>
    <span id="chars"></span>
  </div>
  <div class="row">
    <label>Language <select id="language"><option value="auto">auto</option><option value="en">English</option><option value="ja">日本語</option></select></label>
    <label>Style <select id="style"><option value="paragraph">paragraph</option><option value="bullets">bullets</option></select></label>
    <label>API key <input id="apikey" type="password" size="14" placeholder="(if required)"></label>
    <label title="A job keeps running without this page; long texts (over 100,000 characters) always run as one"><input id="asjob" type="checkbox"> as a job</label>
    <button id="go">Summarize</button>
    <button id="stop" class="secondary" disabled>Stop</button>
  </div>
  <div id="meta"></div>
  <div id="summary" aria-live="polite"></div>
  <div id="error"></div>
  <table id="timings"></table>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const text = $("text");
let controller = null;
let jobId = null;          // the job this page follows
const LONG_TEXT = 100000;  // characters: a text this long runs as a job
$("apikey").value = localStorage.getItem("summarizer.apikey") || "";
text.addEventListener("input", () => {
  const n = [...text.value].length;
  $("chars").textContent = n.toLocaleString() + " chars" + (n > LONG_TEXT ? " (runs as a job)" : "");
});
text.addEventListener("dragover", (e) => { e.preventDefault(); text.classList.add("drop"); });
text.addEventListener("dragleave", () => text.classList.remove("drop"));
async function load(file) {
  if (!file) return;
  text.value = await file.text(); text.dispatchEvent(new Event("input"));
}
text.addEventListener("drop", (e) => { e.preventDefault(); text.classList.remove("drop"); load(e.dataTransfer.files[0]); });
$("file").addEventListener("change", (e) => { load(e.target.files[0]); e.target.value = ""; });
$("stop").addEventListener("click", stop);
$("go").addEventListener("click", () => {
  if ($("asjob").checked || [...text.value].length > LONG_TEXT) submitJob(); else summarize();
});
const reattach = new URLSearchParams(location.search).get("job");
if (reattach) follow(reattach, true);

function authHeaders(extra) {
  const key = $("apikey").value.trim();
  localStorage.setItem("summarizer.apikey", key);
  const headers = Object.assign({}, extra);
  if (key) headers["Authorization"] = "Bearer " + key;
  return headers;
}

function clear() {
  $("summary").textContent = ""; $("error").textContent = ""; $("meta").textContent = ""; $("timings").replaceChildren();
}

function busy(on) { $("go").disabled = on; $("stop").disabled = !on; }

async function stop() {
  if (jobId) {
    await fetch("jobs/" + jobId, { method: "DELETE", headers: authHeaders() }).catch(() => null);
  } else if (controller) {
    controller.abort();
  }
}

// Reads a Server-Sent Events body, calling onEvent(event, data, id) for each event.
async function readEvents(res, onEvent) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end); buffer = buffer.slice(end + 2);
      let event = "message", data = "", id = null;
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
        else if (line.startsWith("id: ")) id = line.slice(4);
      }
      if (data) onEvent(event, JSON.parse(data), id);
    }
  }
}

async function submitJob() {
  clear();
  busy(true);
  try {
    const res = await fetch("jobs", { method: "POST", headers: authHeaders({ "Content-Type": "application/json" }),
      body: JSON.stringify({ text: text.value, language: $("language").value, style: $("style").value }) });
    const body = await res.json().catch(() => null);
    if (!res.ok) { show("error", body || { error: { code: res.status, message: res.statusText } }); busy(false); return; }
    history.replaceState(null, "", "?job=" + body.id);
    follow(body.id, false);
  } catch (e) {
    show("error", { error: { code: "network", message: String(e) } }); busy(false);
  }
}

// Follows a job's events from the first (a reload replays them all), reconnecting after the last
// one seen when the connection drops, until it is done, failed or cancelled.
async function follow(id, reattached) {
  jobId = id;
  clear();
  busy(true);
  $("meta").textContent = "job " + id + (reattached ? " (reattached)" : "");
  let last = null, ended = false, failures = 0;
  while (!ended && failures < 30) {
    try {
      const res = await fetch("jobs/" + id + "/events", { headers: authHeaders(last ? { "Last-Event-ID": last } : {}) });
      if (!res.ok) {
        const body = await res.json().catch(() => null);
        show("error", body || { error: { code: res.status, message: res.statusText } });
        if (res.status === 404 || res.status === 401) break;
        throw new Error("HTTP " + res.status);
      }
      failures = 0;
      await readEvents(res, (event, data, seq) => {
        if (seq) last = seq;
        if (event === "done" || event === "error" || event === "cancelled") ended = true;
        showJob(id, event, data);
      });
    } catch (e) {
      ++failures;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  jobId = null;
  busy(false);
}

// The job's state, shown in #meta (created there if it is not yet).
function jobState() {
  let state = $("state");
  if (!state) { state = document.createElement("span"); state.id = "state"; $("meta").append(" · ", state); }
  return state;
}

function showJob(id, event, data) {
  if (event === "state") {
    jobState().textContent = data.state + (data.attempt > 1 ? " (attempt " + data.attempt + ")" : "") +
      (data.resumed_steps ? ", resumed from " + data.resumed_steps + " finished steps" : "") +
      (data.reason ? ": " + data.reason : "");
  } else if (event === "meta") {
    const state = jobState().textContent;
    $("meta").textContent = "job " + id + " · route " + data.route + " · model " + data.model + " · " + data.chunks + " chunk(s)";
    jobState().textContent = state || "running";
    if (data.replanned) $("meta").append(" · re-planned: " + data.replanned);
  } else if (event === "progress") {
    show("progress", data);
  } else if (event === "done") {
    $("summary").textContent = data.summary;
    jobState().textContent = "done";
    show("done", data);
  } else if (event === "cancelled") {
    jobState().textContent = "cancelled";
    $("error").textContent = "cancelled" + (data.reason ? ": " + data.reason : "");
  } else {
    show(event, data);
  }
}

function show(event, data) {
  if (event === "meta") {
    $("meta").textContent = "route " + data.route + " · model " + data.model + " · " + data.chunks + " chunk(s) · id " + data.request_id;
  } else if (event === "progress") {
    let bar = $("bar");
    if (!bar) { bar = document.createElement("progress"); bar.id = "bar"; $("meta").append(" ", bar, " ", document.createElement("span")); }
    bar.max = data.total; bar.value = data.done;
    bar.nextSibling.nextSibling.textContent = data.phase + " " + data.done + "/" + data.total;
  } else if (event === "delta") {
    $("summary").textContent += data.text;
  } else if (event === "done") {
    const t = data.timings, u = data.usage;
    const rows = [["route", data.route], ["total", t.total_ms.toFixed(0) + " ms"], ["time to first token", t.ttft_ms.toFixed(0) + " ms"],
      ["prefill", t.prefill_tokens_per_s.toFixed(0) + " tok/s"], ["decode", t.decode_tokens_per_s.toFixed(1) + " tok/s"],
      ["tokens in / out", u.prompt_tokens + " / " + u.completion_tokens], ["upstream calls", u.upstream_requests],
      ["chunks / levels", data.chunks + " / " + data.levels]];
    if (data.cached) rows.unshift(["cached", "yes: an earlier run's summary"]);
    $("timings").replaceChildren(...rows.map(([k, v]) => { const tr = document.createElement("tr");
      tr.innerHTML = "<td></td><td></td>"; tr.children[0].textContent = k; tr.children[1].textContent = v; return tr; }));
  } else if (event === "error") {
    $("error").textContent = data.error.code + ": " + data.error.message;
  }
}

async function summarize() {
  clear();
  if (location.search) history.replaceState(null, "", location.pathname);
  const headers = authHeaders({ "Content-Type": "application/json", "Accept": "text/event-stream" });
  controller = new AbortController();
  busy(true);
  try {
    const res = await fetch("summarize", { method: "POST", headers, signal: controller.signal,
      body: JSON.stringify({ text: text.value, language: $("language").value, style: $("style").value, stream: true }) });
    if (!res.ok) { const body = await res.json().catch(() => null); show("error", body || { error: { code: res.status, message: res.statusText } }); return; }
    await readEvents(res, (event, data) => show(event, data));
  } catch (e) {
    if (e.name !== "AbortError") show("error", { error: { code: "network", message: String(e) } });
    else $("meta").textContent += " · stopped";
  } finally {
    busy(false); controller = null;
  }
}
</script>
</body>
</html>
)HTML";
    return kPage;
}

}  // namespace summarizer
