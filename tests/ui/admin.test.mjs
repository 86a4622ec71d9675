// Drives the authors' insights page (web/admin.html) and the reader page's "Answer in" choice in
// Debian's Chromium through the real gateway: a wrong token is refused, the admin token shows the
// uncovered questions (grouped, with counts) and the down-rated answers with their comments, the
// CSV downloads; a question asked "in Urdu" sends language=ur and its answer reads right to left.
//
// Usage: node admin.test.mjs <gateway-url> <admin-token> <tag> <comment> <output-dir>
// Prints one JSON object ({checks, screenshots, console}) and exits 0 only if every check passed.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

import { chromium } from "playwright-core";

const [gatewayUrl, adminToken, tag, comment, outDir] = process.argv.slice(2);
if (!gatewayUrl || !adminToken || !tag || !comment || !outDir) {
  console.error("usage: node admin.test.mjs <gateway-url> <admin-token> <tag> <comment> <output-dir>");
  process.exit(2);
}
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const results = { checks: [], screenshots: [], console: [] };
mkdirSync(outDir, { recursive: true });

async function screenshot(page, name) {
  const path = join(outDir, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  results.screenshots.push(path);
}

async function run(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(30000);
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) results.console.push(m.text());
  });
  page.on("pageerror", (error) => results.console.push(`pageerror: ${error.message}`));
  const check = async (name, fn) => {
    try {
      await fn();
      results.checks.push({ name, ok: true });
    } catch (error) {
      results.checks.push({ name, ok: false, error: String(error?.stack ?? error) });
      await screenshot(page, `failed-${name.replace(/\W+/g, "-")}`).catch(() => {});
      throw error;
    }
  };

  await check("the reader page links to the authors' page", async () => {
    await page.goto(`${gatewayUrl}/`);
    await page.click("a[href='/static/admin.html']");
    await page.waitForURL(/\/static\/admin\.html$/);
    assert.equal(await page.title(), "Lectern · What the book does not answer");
  });

  await check("a token that is not the admin's is refused", async () => {
    await page.fill("#admin-token", "not-the-admin-token");
    await page.click("#insights-load");
    await page.locator("#insights-error:not([hidden])").waitFor();
    assert.match(await page.textContent("#insights-error"), /not the admin token/);
    assert.ok(await page.isHidden("#insights"));
  });

  await check("the admin token shows the uncovered questions grouped, with counts", async () => {
    await page.fill("#admin-token", adminToken);
    await page.fill("#insights-days", "1");
    await page.click("#insights-load");
    await page.locator("#insights:not([hidden])").waitFor();
    const row = page.locator("#uncovered-rows tr", { hasText: tag });
    assert.equal(await row.count(), 1, "the two wordings are one row");
    const cells = await row.locator("td").allTextContents();
    assert.equal(cells[1], "2");
    assert.ok(await page.isHidden("#insights-error"));
  });

  await check("the down-rated answer is listed with its comment", async () => {
    const row = page.locator("#down-rows tr", { hasText: comment });
    assert.equal(await row.count(), 1);
    assert.match(await page.textContent("#citation-share"), /checked|No citation/);
    await screenshot(page, "admin-insights");
  });

  await check("the CSV downloads and holds the group", async () => {
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#insights-csv")]);
    const path = join(outDir, "insights.csv");
    await download.saveAs(path);
    const text = readFileSync(path, "utf8");
    assert.match(text.split("\r\n")[0], /^section,chapter_id,title,text,count/);
    assert.ok(text.split("\r\n").some((line) => line.startsWith("uncovered,") && line.includes(tag) && line.includes(",2,")));
  });

  await check("asking in Urdu sends language=ur and the answer reads right to left", async () => {
    let body = null;
    page.on("request", (request) => {
      if (request.url().endsWith("/api/chat/stream")) body = request.postDataJSON();
    });
    await page.goto(`${gatewayUrl}/`);
    await page.waitForSelector('body[data-ready="true"]');
    await page.selectOption("#answer-language", "ur");
    await page.fill("#question", "What does an IMU measure on a walking humanoid?");
    await page.click("#ask-button");
    const turn = page.locator("#thread > li.turn").last();
    await turn.locator(".meta:has-text('Answered'), .error:not([hidden])").first().waitFor();
    assert.equal(body?.language, "ur");
    assert.equal(await turn.locator(".answer").getAttribute("dir"), "auto");
  });
}

const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
let code = 0;
try {
  await run(browser);
} catch {
  code = 1;
} finally {
  await browser.close();
}
console.log(JSON.stringify(results));
process.exit(code);
