// Drives the status page (/status) in Debian's Chromium: screenshots it healthy (wide and
// phone-sized), then tells the test it is ready, waits for the test to stop a service (a line
// "stopped <service>" on stdin) and measures how long the service's card takes to turn red.
//
// Usage: node status.test.mjs <gateway-url> <output-dir>
// Prints JSON lines: {"ready": true} once healthy, then the report {checks, screenshots, facts}.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

import { chromium } from "../ui/node_modules/playwright-core/index.mjs";

const [gatewayUrl, outDir] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const PARTS = ["chat", "retrieval", "profile", "summary", "auth", "gateway"];
const report = { checks: [], screenshots: [], facts: {}, console: [] };
mkdirSync(outDir, { recursive: true });

function check(name, ok, detail = "") {
  report.checks.push({ name, ok: Boolean(ok), detail });
  if (!ok) throw new Error(`${name}: ${detail}`);
}

async function shot(page, name) {
  const path = join(outDir, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  report.screenshots.push(path);
}

const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
let code = 1;
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("console", (m) => { if (m.type() === "error") report.console.push(m.text()); });
  page.on("pageerror", (e) => report.console.push(String(e)));
  await page.goto(`${gatewayUrl}/status`);
  await page.waitForFunction((parts) => parts.every(
    (p) => document.querySelector(`[data-part="${p}"]`)?.dataset.state === "up"), PARTS, { timeout: 30000 });
  // Rates need two samples a second apart; wait until the chat card shows one.
  await page.waitForFunction(() => document.querySelector('[data-part="chat"]').textContent.includes(" /s"),
    null, { timeout: 15000 });
  check("every part is up", true);
  const stores = await page.$$eval("#stores [data-part]", (els) => els.map((e) => [e.dataset.part, e.dataset.state]));
  check("stores listed and up", stores.length >= 2 && stores.every(([, s]) => s === "up"), JSON.stringify(stores));
  report.facts.stores = stores;
  await shot(page, "status-1280-healthy");

  const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
  await phone.goto(`${gatewayUrl}/status`);
  await phone.waitForSelector('[data-part="chat"][data-state="up"]', { timeout: 30000 });
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check("readable on a phone (no sideways scrolling)", overflow <= 0, `overflow ${overflow}px`);
  await shot(phone, "status-390-healthy");
  await phone.close();

  console.log(JSON.stringify({ ready: true }));
  const line = (await stdinLines.next()).value || "";
  const service = line.replace(/^stopped /, "").trim();
  const stoppedAt = Date.now();
  await page.waitForSelector(`[data-part="${service}"][data-state="down"]`, { timeout: 15000 });
  const redAfter = Date.now() - stoppedAt;
  report.facts.red_after_ms = redAfter;
  check(`${service} turns red within 5 s`, redAfter <= 5000, `${redAfter} ms`);
  const others = await page.$$eval("#parts [data-part]", (els) => els.map((e) => [e.dataset.part, e.dataset.state]));
  check("the other parts stay up", others.every(([p, s]) => p === service || s === "up"), JSON.stringify(others));
  const summary = await page.textContent("#summary");
  check("the summary names the problem", summary.includes(service), summary);
  await shot(page, `status-1280-${service}-down`);
  check("no console errors", report.console.length === 0, report.console.join("\n"));
  code = 0;
} catch (error) {
  report.error = String(error.stack || error);
} finally {
  await browser.close();
  console.log(JSON.stringify(report));
  process.exit(code);
}
