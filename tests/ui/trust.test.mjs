// Drives the reader page in Debian's Chromium through the real gateway to show what a reader
// sees of the citation checks (a supported, an unsupported and a dangling marker, each drawn
// differently, live and in the reopened conversation) and of an extractive fallback answer
// (the fake Gemini rate-limited: the label above the answer).
//
// Usage: node trust.test.mjs <gateway-url> <fake-gemini-url> <output-dir>
// Prints one JSON object ({checks, screenshots, facts, console}) and exits 0 only if every
// check passed; the first failure stops the run and leaves a screenshot.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

import { chromium } from "playwright-core";

const [gatewayUrl, fakeGeminiUrl, outDir] = process.argv.slice(2);
if (!gatewayUrl || !fakeGeminiUrl || !outDir) {
  console.error("usage: node trust.test.mjs <gateway-url> <fake-gemini-url> <output-dir>");
  process.exit(2);
}
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const QUESTION = "What does an IMU measure on a walking humanoid?";
const INVENTED = "Humanoids are tuned with a genetic algorithm that runs on the GPU overnight";

const results = { checks: [], screenshots: [], facts: {}, console: [] };
mkdirSync(outDir, { recursive: true });

async function fake(path, body) {
  const response = await fetch(`${fakeGeminiUrl}${path}`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body ?? {}),
    signal: AbortSignal.timeout(5000),
  });
  assert.equal(response.status, 200, `fake Gemini ${path}`);
}

async function screenshot(page, name, options = {}) {
  const path = join(outDir, `${name}.png`);
  await page.screenshot({ path, ...options });
  results.screenshots.push(path);
}

/** A sentence of the passage as the model might repeat it (its first long one). */
function firstSentence(passage) {
  const flat = passage.replace(/[#*`_>]/g, " ").split(/\s+/).join(" ").trim();
  return flat.split(/(?<=[.!?])\s+/).find((s) => s.length > 40).replace(/[.!?]$/, "");
}

const lastTurn = (page) => page.locator("#thread > li.turn").last();

async function askAndWait(page, question) {
  const before = await page.locator("#thread > li.turn").count();
  await page.fill("#question", question);
  await page.click("#ask-button");
  await page.waitForFunction((n) => document.querySelectorAll("#thread > li.turn").length === n + 1, before);
  const turn = lastTurn(page);
  await turn.locator(".meta:has-text('Answered'), .error:not([hidden])").first().waitFor();
  assert.ok(!(await turn.locator(".error").isVisible()), `the answer failed: ${await turn.locator(".error").textContent()}`);
  return turn;
}

async function run(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(30000);
  page.on("console", (message) => {
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      results.console.push(message.text());
    }
  });
  page.on("pageerror", (error) => results.console.push(`pageerror: ${error.message}`));

  const check = async (name, fn) => {
    try {
      const detail = await fn();
      results.checks.push({ name, ok: true, ...(detail ? { detail } : {}) });
    } catch (error) {
      results.checks.push({ name, ok: false, error: String(error?.stack ?? error) });
      await screenshot(page, `failed-${name.replace(/\W+/g, "-")}`, { fullPage: true }).catch(() => {});
      throw error;
    }
  };

  await check("the page loads", async () => {
    assert.equal((await page.goto(`${gatewayUrl}/`)).status(), 200);
    await page.waitForSelector('body[data-ready="true"]');
  });

  await check("supported, unsupported and dangling citations are drawn differently", async () => {
    // The chat searches the question as it is: the same search shows the passages it gets.
    const found = await page.evaluate(async (q) => {
      const response = await fetch("/api/search", {
        method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query: q, top_k: 5 }),
      });
      return (await response.json()).results;
    }, QUESTION);
    const reply = `${firstSentence(found[0].text)} [1]. ${INVENTED} [2]. Robots also dream of sheep [9].`;
    await fake("/_fake/config", { default_reply: reply });
    const turn = await askAndWait(page, QUESTION);
    const cites = turn.locator(".answer .cite");
    assert.equal(await cites.count(), 3);
    assert.equal(await cites.nth(0).getAttribute("data-check"), "supported");
    assert.match(await cites.nth(0).getAttribute("class"), /^cite$/);
    assert.match(await cites.nth(1).getAttribute("class"), /unsupported/);
    assert.match(await cites.nth(1).getAttribute("title"), /does not seem to support/);
    assert.match(await cites.nth(2).getAttribute("class"), /dangling/);
    assert.equal(await cites.nth(2).evaluate((node) => node.tagName), "SPAN"); // no link to nowhere
    // Drawn differently: the colours of a supported and an unsupported marker differ.
    const colours = await cites.evaluateAll((nodes) => nodes.map((n) => getComputedStyle(n).color));
    assert.notEqual(colours[0], colours[1]);
    assert.notEqual(await cites.nth(2).evaluate((n) => getComputedStyle(n).textDecorationLine), "none");
    const line = await turn.locator(".check-line").textContent();
    assert.match(line, /1 citation not supported by its source, 1 citation naming no source/);
    await screenshot(page, "trust-citation-checks", { fullPage: true });
    return { colours, line };
  });

  await check("a rate-limited model gives an answer quoted from the book, labelled as such", async () => {
    await fake("/_fake/reset");
    // A follow-up: the rewrite spends three 429s (it falls back to the question), the answer three.
    await fake("/_fake/config", { fail_next: [429, 429, 429, 429, 429, 429] });
    const turn = await askAndWait(page, "How does a lidar work in the dark?");
    const label = turn.locator(".fallback-label");
    assert.ok(await label.isVisible(), "the fallback label is shown");
    assert.match(await label.textContent(), /Quoted from the book: the language model is busy/);
    assert.match(await turn.locator(".meta").textContent(), /model extractive/);
    assert.ok(await turn.locator(".answer .cite").count() > 0, "the quotes cite their sources");
    await screenshot(page, "trust-fallback", { fullPage: true });
  });

  await check("the reopened conversation shows the same checks and label", async () => {
    await fake("/_fake/reset");
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]');
    await page.waitForFunction(() => document.querySelectorAll("#thread > li.turn").length >= 2);
    const [first, second] = [page.locator("#thread > li.turn").nth(0), page.locator("#thread > li.turn").nth(1)];
    assert.equal(await first.locator(".answer .cite.unsupported").count(), 1);
    assert.equal(await first.locator(".answer .cite.dangling").count(), 1);
    assert.ok(await second.locator(".fallback-label").isVisible());
  });

  await check("no script errors or CSP violations in the console", async () => {
    assert.deepEqual(results.console, []);
  });
  await context.close();
}

let browser;
let exitCode = 1;
try {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60000 });
  await run(browser);
  exitCode = 0;
} catch (error) {
  if (!results.checks.some((c) => !c.ok)) results.checks.push({ name: "setup", ok: false, error: String(error?.stack ?? error) });
} finally {
  await browser?.close().catch(() => {});
  await fetch(`${fakeGeminiUrl}/_fake/reset`, { method: "POST" }).catch(() => {});
  process.stdout.write(`${JSON.stringify(results)}\n`);
  process.exit(exitCode);
}
