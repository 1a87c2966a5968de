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
  <p class="sub">Paste a text or drop a .txt file; the summary streams in as the model writes it.</p>
  <textarea id="text" placeholder="Paste the text to summarize, or drop a text file here"></textarea>
  <div class="row small">
    <label class="file">Open a text file… <input id="file" type="file" accept=".txt,.md,.csv,.log,text/*"></label>
    <span id="chars"></span>
  </div>
  <div class="row">
    <label>Language <select id="language"><option value="auto">auto</option><option value="en">English</option><option value="ja">日本語</option></select></label>
    <label>Style <select id="style"><option value="paragraph">paragraph</option><option value="bullets">bullets</option></select></label>
    <label>API key <input id="apikey" type="password" size="14" placeholder="(if required)"></label>
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
$("apikey").value = localStorage.getItem("summarizer.apikey") || "";
text.addEventListener("input", () => { $("chars").textContent = [...text.value].length.toLocaleString() + " chars"; });
text.addEventListener("dragover", (e) => { e.preventDefault(); text.classList.add("drop"); });
text.addEventListener("dragleave", () => text.classList.remove("drop"));
async function load(file) {
  if (!file) return;
  text.value = await file.text(); text.dispatchEvent(new Event("input"));
}
text.addEventListener("drop", (e) => { e.preventDefault(); text.classList.remove("drop"); load(e.dataTransfer.files[0]); });
$("file").addEventListener("change", (e) => { load(e.target.files[0]); e.target.value = ""; });
$("stop").addEventListener("click", () => { if (controller) controller.abort(); });
$("go").addEventListener("click", summarize);

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
    $("timings").replaceChildren(...rows.map(([k, v]) => { const tr = document.createElement("tr");
      tr.innerHTML = "<td></td><td></td>"; tr.children[0].textContent = k; tr.children[1].textContent = v; return tr; }));
  } else if (event === "error") {
    $("error").textContent = data.error.code + ": " + data.error.message;
  }
}

async function summarize() {
  $("summary").textContent = ""; $("error").textContent = ""; $("meta").textContent = ""; $("timings").replaceChildren();
  const key = $("apikey").value.trim();
  localStorage.setItem("summarizer.apikey", key);
  const headers = { "Content-Type": "application/json", "Accept": "text/event-stream" };
  if (key) headers["Authorization"] = "Bearer " + key;
  controller = new AbortController();
  $("go").disabled = true; $("stop").disabled = false;
  try {
    const res = await fetch("summarize", { method: "POST", headers, signal: controller.signal,
      body: JSON.stringify({ text: text.value, language: $("language").value, style: $("style").value, stream: true }) });
    if (!res.ok) { const body = await res.json().catch(() => null); show("error", body || { error: { code: res.status, message: res.statusText } }); return; }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end); buffer = buffer.slice(end + 2);
        let event = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) event = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        if (data) show(event, JSON.parse(data));
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") show("error", { error: { code: "network", message: String(e) } });
    else $("meta").textContent += " · stopped";
  } finally {
    $("go").disabled = false; $("stop").disabled = true; controller = null;
  }
}
</script>
</body>
</html>
)HTML";
    return kPage;
}

}  // namespace summarizer
