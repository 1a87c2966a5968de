// Headless Chromium test of the page at GET / (run by scripts/check-web.sh, which starts the fake
// Ollama and the service). Drives Debian's /usr/bin/chromium with playwright-core; no browser is
// ever downloaded.
//
// Environment:
//   SUMMARIZER_URL  base URL of a running service, e.g. http://127.0.0.1:18080 (required)
//   EXPECTED_REPLY  the text the fake Ollama generates (--reply), i.e. the expected summary (required)
//   OUT_DIR         where summarizer-page.png goes (default /tmp)
//   CHROMIUM        browser executable (default /usr/bin/chromium)
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";

const baseUrl = process.env.SUMMARIZER_URL;
const expected = process.env.EXPECTED_REPLY;
const outDir = process.env.OUT_DIR || "/tmp";
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const screenshot = path.join(outDir, "summarizer-page.png");

const INPUT = [
  "The city council met on Tuesday to discuss the new tram line. After three hours of debate, the",
  "members voted to fund the first section, from the central station to the university, and asked",
  "the transport office to publish a timetable before the summer. Residents along the route raised",
  "concerns about noise during construction; the council promised night work would be limited.",
].join("\n");

let browser;
let page;
const pageErrors = [];

before(async () => {
  assert.ok(baseUrl, "SUMMARIZER_URL is not set");
  assert.ok(expected, "EXPECTED_REPLY is not set");
  browser = await chromium.launch({
    executablePath,
    headless: true,
    timeout: 30_000,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: new URL(baseUrl).origin });
  page = await context.newPage();
  page.setDefaultTimeout(30_000);  // generous: CI machines can be busy
  page.on("pageerror", (e) => pageErrors.push(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") pageErrors.push(`console error: ${m.text()}`); });
});

after(async () => {
  await browser?.close();
});

// Waits for the end of a summary: the timings table filled by "done", the button enabled again.
async function waitForDone() {
  await page.locator("#timings tr").first().waitFor({ state: "visible" });
  await page.waitForFunction(() => !document.getElementById("go").disabled, null, { timeout: 15_000 });
}

test("the page streams a summary and shows its route and timings", async () => {
  const response = await page.goto(new URL("/", baseUrl).href, { waitUntil: "load" });
  assert.equal(response.status(), 200, "GET / status");
  assert.match(response.headers()["content-type"] ?? "", /^text\/html/, "GET / content type");
  assert.equal(await page.title(), "summarizer");

  // Record every state #summary goes through (a MutationObserver sees each delta as it lands).
  await page.evaluate(() => {
    window.__summaryStates = [];
    const el = document.getElementById("summary");
    new MutationObserver(() => {
      const t = el.textContent;
      if (window.__summaryStates.at(-1) !== t) window.__summaryStates.push(t);
    }).observe(el, { childList: true, characterData: true, subtree: true });
  });

  // Paste the text as a person does: put it on the clipboard, focus the textarea, Ctrl+V.
  const textarea = page.locator("#text");
  await page.evaluate((text) => navigator.clipboard.writeText(text), INPUT);
  await textarea.focus();
  await page.keyboard.press("Control+V");
  assert.equal(await textarea.inputValue(), INPUT, "textarea holds the pasted text");
  await page.locator("#chars").filter({ hasText: `${[...INPUT].length.toLocaleString("en-US")} chars` }).waitFor();

  // Record the buttons' states as they change: the stream can be over before a poll would look.
  await page.evaluate(() => {
    window.__buttonStates = [];
    const go = document.getElementById("go"), stop = document.getElementById("stop");
    new MutationObserver(() => window.__buttonStates.push([go.disabled, stop.disabled]))
      .observe(document.querySelector("main"), { attributes: true, attributeFilter: ["disabled"], subtree: true });
  });
  await page.locator("#go").click();

  // The timings table is filled by the final "done" event.
  await waitForDone();

  const summary = await page.locator("#summary").textContent();
  assert.equal(summary, expected, "final #summary equals the fake Ollama's reply");

  const buttons = await page.evaluate(() => window.__buttonStates);
  assert.ok(buttons.some(([go, stop]) => go && !stop), `while streaming, Summarize was disabled and Stop enabled (${JSON.stringify(buttons)})`);
  assert.deepEqual(buttons.at(-1), [false, true], "after the stream, Summarize is enabled and Stop disabled");

  const states = await page.evaluate(() => window.__summaryStates);
  const partial = [...new Set(states.filter((s) => s.length > 0 && s !== expected))];
  console.log(`#summary went through ${states.length} states, ${partial.length} distinct partial ones`);
  for (const s of partial) {
    assert.ok(expected.startsWith(s), `partial state ${JSON.stringify(s)} is a prefix of the reply`);
  }
  assert.ok(partial.length >= 2, `at least two different partial states before the final text (saw ${JSON.stringify(states)})`);

  const meta = await page.locator("#meta").textContent();
  assert.match(meta, /route 16k\b/, `#meta shows route 16k (got ${JSON.stringify(meta)})`);
  assert.match(meta, /model \S+/, "#meta names the model");

  const rows = await page.locator("#timings tr").evaluateAll((trs) =>
    trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  const table = Object.fromEntries(rows);
  console.log(`timings table: ${JSON.stringify(table)}`);
  assert.equal(table.route, "16k", "timings table route");
  for (const key of ["total", "time to first token", "prefill", "decode", "tokens in / out", "upstream calls", "chunks / levels"]) {
    assert.ok(key in table, `timings table has a "${key}" row`);
    assert.ok(!/NaN|undefined/.test(String(table[key])), `timings "${key}" is a value (${table[key]})`);
  }
  assert.match(table.total, /^\d+ ms$/);
  assert.equal(table["chunks / levels"], "1 / 0");

  assert.equal(await page.locator("#error").textContent(), "", "#error stays empty");
  assert.ok(await page.locator("#timings").isVisible(), "#timings is visible");
  assert.equal(await page.locator("#stop").isDisabled(), true, "Stop is disabled again");

  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`screenshot: ${screenshot}`);
  assert.deepEqual(pageErrors, [], "no page or console errors");
});

test("a chosen or dropped text file fills the text box and is summarized", async () => {
  const chosen = "Minutes of the library board.\nThe board approved longer opening hours on Saturdays.";
  await page.locator("#file").setInputFiles({ name: "minutes.txt", mimeType: "text/plain", buffer: Buffer.from(chosen) });
  await page.waitForFunction((t) => document.getElementById("text").value === t, chosen);
  await page.locator("#chars").filter({ hasText: `${[...chosen].length} chars` }).waitFor();

  // A file dropped on the text box (a real DataTransfer with a File, as a drag from the desktop makes).
  const dropped = "Weather report: rain in the morning, sunny spells after noon, 18 °C.";
  const dataTransfer = await page.evaluateHandle((t) => {
    const dt = new DataTransfer();
    dt.items.add(new File([t], "weather.txt", { type: "text/plain" }));
    return dt;
  }, dropped);
  await page.locator("#text").dispatchEvent("dragover", { dataTransfer });
  assert.ok(await page.locator("#text.drop").count(), "the text box is highlighted while a file is dragged over it");
  await page.locator("#text").dispatchEvent("drop", { dataTransfer });
  await page.waitForFunction((t) => document.getElementById("text").value === t, dropped);
  assert.equal(await page.locator("#text.drop").count(), 0, "the highlight goes away after the drop");

  await page.locator("#go").click();
  await waitForDone();
  assert.equal(await page.locator("#summary").textContent(), expected, "the dropped text is summarized");
  assert.equal(await page.locator("#error").textContent(), "", "#error stays empty");
  await page.screenshot({ path: path.join(outDir, "summarizer-page-file.png"), fullPage: true });
  assert.deepEqual(pageErrors, [], "no page or console errors");
});

test("a long text runs as a job: its progress shows, and a reload reattaches to it", async () => {
  const long = (INPUT + "\n\n").repeat(450);  // ~170K characters: a map-reduce, and a job
  // Set at once: typing (or fill()) 170K characters takes longer than the test's budget.
  await page.evaluate((t) => {
    const area = document.getElementById("text");
    area.value = t;
    area.dispatchEvent(new Event("input"));
  }, long);
  await page.locator("#chars").filter({ hasText: "runs as a job" }).waitFor();
  await page.locator("#go").click();
  await page.waitForURL(/\?job=[0-9a-f]{32}$/);
  const id = new URL(page.url()).searchParams.get("job");
  await page.locator("#bar").waitFor();  // progress of the map, as the steps are committed
  assert.match(await page.locator("#meta").textContent(), /route map_reduce/);

  // A reload (or a closed and reopened tab) finds the job by the id in the address.
  await page.reload({ waitUntil: "load" });
  await page.locator("#meta").filter({ hasText: id }).waitFor();
  await waitForDone();
  assert.equal(await page.locator("#summary").textContent(), expected, "the job's summary after the reload");
  assert.match(await page.locator("#state").textContent(), /^done/);
  const job = await (await fetch(new URL(`/jobs/${id}`, baseUrl))).json();
  assert.equal(job.state, "done");
  assert.equal(job.result.route, "map_reduce");
  await page.screenshot({ path: path.join(outDir, "summarizer-page-job.png"), fullPage: true });
  assert.deepEqual(pageErrors, [], "no page or console errors");
});
