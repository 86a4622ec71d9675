// Drives the demo reader page in Debian's Chromium through the real gateway, as a reader would:
// guest questions with streamed answers and citations, a follow-up, a dropped connection
// resumed, feedback, asking about a selection, a failed answer and its retry, sign-up (the
// guest's conversation is claimed), the profile form, earlier conversations, chapter summary /
// personalized / translated versions, sign-out, and a narrow screen.
//
// Usage: node reader.test.mjs <gateway-url> <fake-gemini-url> <output-dir>
// Prints one JSON object ({checks, screenshots, facts, console}) and exits 0 only if every
// check passed. Checks run in order and stop at the first failure (later ones build on it).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

import { chromium } from "playwright-core";

const [gatewayUrl, fakeGeminiUrl, outDir] = process.argv.slice(2);
if (!gatewayUrl || !fakeGeminiUrl || !outDir) {
  console.error("usage: node reader.test.mjs <gateway-url> <fake-gemini-url> <output-dir>");
  process.exit(2);
}
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const STEP_TIMEOUT_MS = 30000;

// A scripted model reply: markdown, two citations, and markup that must stay inert text.
const INJECTION = '<img src=x onerror="window.__pwned=1">';
const SCRIPTED_QUESTION = "How does the page render a scripted answer?";
const SCRIPTED_REPLY = `Sensors are added to a model in its description file [1]. ${INJECTION}\n\n`
  + "- Use `gz sim` to try it [2]\n- Check the topics with **gz topic** [1, 2]\n\n"
  + "```\ngz topic -l [1]\n```\nThat is all.";

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

/** Collects the chat stream requests the page makes (body and headers), in order. */
function watchStreams(page) {
  const seen = [];
  page.on("request", async (request) => {
    if (!request.url().endsWith("/api/chat/stream")) return;
    const entry = { body: request.postDataJSON(), headers: null };
    seen.push(entry);
    entry.headers = await request.allHeaders();
  });
  return seen;
}

/** Submits the account form with one of its buttons and waits until the reader is signed in. */
async function submitAuth(page, button) {
  for (let attempt = 0; ; attempt += 1) {
    await page.click(button);
    await page.waitForSelector("#signed-in:not([hidden]), #auth-error:not([hidden])");
    if (await page.isVisible("#signed-in")) return;
    // Other tests share the gateway's per-address limit on /api/auth/*: wait it out.
    const text = await page.textContent("#auth-error");
    assert.ok(attempt < 10 && /too many/i.test(text), `${button} failed: ${text}`);
    await page.waitForTimeout(3000);
  }
}

const lastTurn = (page) => page.locator("#thread > li.turn").last();

/** Asks through the form (or the selection button) and waits for the turn to end. */
async function askAndWait(page, { question, viaSelection = false, expect = "done" }) {
  const before = await page.locator("#thread > li.turn").count();
  if (question !== undefined) await page.fill("#question", question);
  await page.click(viaSelection ? "#ask-selection-button" : "#ask-button");
  await page.waitForFunction((n) => document.querySelectorAll("#thread > li.turn").length === n + 1, before);
  if (expect !== "done") {
    await lastTurn(page).locator(".error").waitFor();
    return lastTurn(page);
  }
  for (let attempt = 0; ; attempt += 1) {
    const turn = lastTurn(page);
    await turn.locator(".meta:has-text('Answered'), .error:not([hidden])").first().waitFor();
    if (!(await turn.locator(".error").isVisible())) return turn;
    // Other tests share the gateway's per-address stream limit: wait it out like a reader would.
    const error = await turn.locator(".error").textContent();
    assert.ok(attempt < 10 && /too many/i.test(error), `the answer failed: ${error}`);
    await page.waitForTimeout(3000);
    await turn.locator(".error button", { hasText: "Try again" }).click();
  }
}

async function apiFromPage(page, path, headers = {}) {
  return page.evaluate(async ([p, h]) => {
    const response = await fetch(p, { headers: { accept: "application/json", ...h } });
    return { status: response.status, body: await response.json().catch(() => null) };
  }, [path, headers]);
}

/**
 * Aborts the browser's established connections to the gateway (`ss -K`, which needs root and
 * a kernel with socket destruction: true here and in CI). Returns how many were cut.
 */
function dropBrowserConnections(port) {
  try {
    const listing = execFileSync("ss", ["-tnpH", "state", "established", "dst", `127.0.0.1:${port}`], { encoding: "utf8" });
    const localPorts = listing.split("\n").filter((line) => line.includes("chrom"))
      .map((line) => line.trim().split(/\s+/)[2].split(":").pop());
    for (const local of localPorts) {
      execFileSync("ss", ["-K", "-tn", "dst", `127.0.0.1:${port}`, "sport", "=", `:${local}`]);
    }
    return localPorts.length;
  } catch (error) {
    throw new Error(`cutting the browser's connection needs \`ss -K\` (iproute2) run as root: ${error.message}`);
  }
}

const normalize = (text) => text.replace(/\s+/g, " ").trim();

async function run(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  page.on("console", (message) => {
    // The browser reports every non-2xx fetch (e.g. 404 for "no profile yet") as a console error.
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      results.console.push(message.text());
    }
  });
  page.on("pageerror", (error) => results.console.push(`pageerror: ${error.message}`));
  const streams = watchStreams(page);

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

  await check("page loads through the gateway with a strict CSP", async () => {
    const response = await page.goto(`${gatewayUrl}/`);
    assert.equal(response.status(), 200);
    assert.match(response.headers()["content-security-policy"] ?? "", /script-src 'self'/);
    await page.waitForSelector('body[data-ready="true"]');
    assert.equal(await page.title(), "Lectern · Physical AI & Humanoid Robotics");
    assert.equal(await page.textContent("#account-status"), "Reading as a guest");
  });

  await check("chapter list shows the ingested chapters", async () => {
    const { status, body } = await apiFromPage(page, "/api/chapters");
    assert.equal(status, 200);
    assert.ok(body.chapters.length > 0, "the book has chapters");
    assert.equal(await page.locator("#chapter-list li").count(), body.chapters.length);
    const first = body.chapters[0];
    await page.fill("#chapter-filter", first.source_path);
    const titles = await page.locator("#chapter-list .chapter-title").allTextContents();
    assert.ok(titles.includes(first.title), "filtering by path keeps the chapter");
    assert.ok(titles.length < body.chapters.length || body.chapters.length === 1, "filtering narrows the list");
    await page.fill("#chapter-filter", "");
    return { chapters: body.chapters.length };
  });

  await check("the SSE parser handles split chunks, CRLF, comments and multi-line data", async () => {
    const events = await page.evaluate(async () => {
      const { EventStreamParser } = await import("/static/sse.js");
      const parser = new EventStreamParser();
      const chunks = [": keep-alive\r\n\r", "\nid: 1\r\nevent: meta\r\ndata: {\"a\":", "1}\r\n\r\n",
        "id: 2\nevent: token\ndata: line one\ndata: line two\n", "\n", "data: no event name\n\n"];
      return chunks.flatMap((chunk) => parser.push(chunk));
    });
    assert.deepEqual(events, [
      { event: "meta", data: '{"a":1}', id: "1" },
      { event: "token", data: "line one\nline two", id: "2" },
      { event: "message", data: "no event name", id: "2" },
    ]);
  });

  let firstConversation;
  await check("a guest question streams an answer with sources rendered as links", async () => {
    await fake("/_fake/config", { token_interval_ms: 40, words_per_chunk: 2 });
    // Record the answer's length as it grows, to see that tokens appear before the end.
    await page.evaluate(() => {
      window.__lengths = [];
      document.getElementById("ask-button").addEventListener("click", () => {
        window.__askedAt = performance.now();
      }, { capture: true, once: true });
      new MutationObserver(() => {
        const answer = document.querySelector("#thread > li.turn:last-child .answer");
        if (answer?.getAttribute("aria-busy") === "true" && !answer.querySelector(".pending")) {
          window.__lengths.push(answer.textContent.length);
          window.__firstTextAt ??= performance.now();
        }
      }).observe(document.getElementById("thread"), { subtree: true, childList: true, characterData: true });
    });
    const turn = await askAndWait(page, { question: "How do I add a camera sensor to a robot in Gazebo?" });
    const doneAt = await page.evaluate(() => performance.now());
    const lengths = [...new Set(await page.evaluate(() => window.__lengths.filter((n) => n > 0)))];
    // Seen from the reader's side: click to first words on screen, and to the finished answer
    // (the fake model sends a word every 40 ms; noisy on a shared machine).
    results.facts.browser_timings_ms = await page.evaluate((end) => ({
      first_text: Math.round(window.__firstTextAt - window.__askedAt),
      done_seen: Math.round(end - window.__askedAt),
    }), doneAt);
    assert.ok(lengths.length >= 3, `the answer grew in steps while streaming (${lengths})`);
    const sources = await turn.locator("ol.sources > li").evaluateAll((items) => items.map((li) => ({
      n: li.value, href: li.querySelector("a.source-link")?.href, title: li.querySelector("a.source-link")?.textContent,
    })));
    assert.ok(sources.length > 0, "sources are listed");
    assert.ok(sources.every((s) => s.href && /^https?:/.test(s.href)), "every source is a link");
    assert.deepEqual(sources.map((s) => s.n), sources.map((_, i) => i + 1), "sources are numbered 1..n");
    const meta = await turn.locator(".meta").textContent();
    assert.match(meta, /total \d+ ms/);
    assert.match(meta, /first token \d+ ms/);
    const body = streams.at(-1).body;
    assert.equal(body.conversation_id, null);
    assert.equal(body.selected_text, null);
    firstConversation = {
      answer: normalize(await turn.locator(".answer").innerText()),
      sources: sources.map((s) => s.href),
      guestToken: await page.evaluate(() => sessionStorage.getItem("lectern.guest_token")),
    };
    assert.ok(firstConversation.guestToken, "the guest token from meta is kept in sessionStorage");
    await fake("/_fake/reset");
    await screenshot(page, "reader-1280-answer");
    return { sources: sources.length, steps: lengths.length };
  });

  await check("a follow-up keeps the conversation and the guest token", async () => {
    await askAndWait(page, { question: "And how do I see its images?" });
    const first = streams.find((s) => s.body.message.startsWith("How do I add a camera"));
    const second = streams.at(-1);
    assert.equal(first.body.conversation_id, null);
    assert.match(second.body.conversation_id ?? "", /^[0-9a-f-]{36}$/);
    assert.equal(second.headers["x-guest-token"], firstConversation.guestToken);
    firstConversation.id = second.body.conversation_id;
    results.facts.guest_conversation = firstConversation;
    // What the page showed is what the chat service stored for this guest.
    const stored = await apiFromPage(page, `/api/chat/conversations/${firstConversation.id}`,
      { "x-guest-token": firstConversation.guestToken });
    assert.equal(stored.status, 200);
    const answers = stored.body.messages.filter((m) => m.role === "assistant");
    assert.equal(answers.length, 2);
    assert.equal(normalize(answers[0].content), firstConversation.answer);
    assert.deepEqual(answers[0].sources.map((s) => new URL(s.url, gatewayUrl).href), firstConversation.sources);
  });

  await check("a dropped connection is resumed with Last-Event-ID and loses nothing", async () => {
    await fake("/_fake/config", { token_interval_ms: 120, words_per_chunk: 1 });
    const resumed = [];
    page.on("request", async (request) => {
      if (request.url().includes("/events")) resumed.push(await request.allHeaders());
    });
    const before = await page.locator("#thread > li.turn").count();
    await page.fill("#question", "Tell me more about cameras.");
    await page.click("#ask-button");
    await page.waitForFunction((n) => {
      const answer = document.querySelectorAll("#thread > li.turn")[n]?.querySelector(".answer");
      return answer && answer.textContent.length > 40;
    }, before);
    // Cut the browser's TCP connections to the gateway, as a network drop would.
    const cut = dropBrowserConnections(new URL(gatewayUrl).port);
    assert.ok(cut > 0, "the browser's connection was found and cut");
    const turn = lastTurn(page);
    await turn.locator(".meta", { hasText: "Answered" }).waitFor({ timeout: 60000 });
    await fake("/_fake/reset");
    assert.ok(resumed.length >= 1, "the page asked for the rest of the answer (`ss -K` cuts only as root)");
    assert.match(resumed[0]["last-event-id"] ?? "", /^\d+$/);
    assert.equal(resumed[0]["x-guest-token"], firstConversation.guestToken);
    const stored = await apiFromPage(page, `/api/chat/conversations/${firstConversation.id}`,
      { "x-guest-token": firstConversation.guestToken });
    const answer = stored.body.messages.filter((m) => m.role === "assistant").at(-1);
    assert.equal(normalize(await turn.locator(".answer").innerText()), normalize(answer.content));
    return { resumed_after: resumed[0]["last-event-id"] };
  });

  await check("a resume the gateway cannot serve yet (502) is tried again", async () => {
    await fake("/_fake/config", { token_interval_ms: 120, words_per_chunk: 1 });
    let refused = 0;
    let served = 0;
    await page.route("**/api/chat/messages/*/events", async (route) => {
      if (refused === 0) {
        refused += 1;
        await route.fulfill({ status: 502, contentType: "application/json",
          body: JSON.stringify({ error: { code: "bad_gateway", message: "try again" } }) });
      } else {
        served += 1;
        await route.continue();
      }
    });
    const before = await page.locator("#thread > li.turn").count();
    await page.fill("#question", "How does a camera sensor work?");
    await page.click("#ask-button");
    await page.waitForFunction((n) => {
      const answer = document.querySelectorAll("#thread > li.turn")[n]?.querySelector(".answer");
      return answer && answer.textContent.length > 40;
    }, before);
    assert.ok(dropBrowserConnections(new URL(gatewayUrl).port) > 0, "the connection was cut");
    const turn = lastTurn(page);
    await turn.locator(".meta", { hasText: "Answered" }).waitFor({ timeout: 60000 });
    await page.unroute("**/api/chat/messages/*/events");
    await fake("/_fake/reset");
    assert.equal(refused, 1);
    assert.ok(served >= 1, "after the 502 the page asked again and got the rest");
    return { refused, served };
  });

  await check("feedback on an answer is stored", async () => {
    const first = page.locator("#thread > li.turn").first();
    await first.locator(".feedback button", { hasText: /^Helpful$/ }).click();
    await first.locator(".feedback .status", { hasText: "Thanks for the feedback." }).waitFor();
    assert.equal(await first.locator(".feedback button", { hasText: /^Helpful$/ }).getAttribute("aria-pressed"), "true");
    const stored = await apiFromPage(page, `/api/chat/conversations/${firstConversation.id}`,
      { "x-guest-token": firstConversation.guestToken });
    assert.equal(stored.body.messages.find((m) => m.role === "assistant").feedback, "up");
  });

  await check("citations become links to their sources and model markup stays text", async () => {
    await fake("/_fake/config", { replies: [{ contains: SCRIPTED_QUESTION, reply: SCRIPTED_REPLY }] });
    const turn = await askAndWait(page, { question: SCRIPTED_QUESTION });
    const sources = await turn.locator("ol.sources a.source-link").evaluateAll((links) => links.map((a) => a.href));
    const cites = await turn.locator(".answer a.cite").evaluateAll((links) => links.map((a) => [a.textContent, a.href]));
    const expected = [["[1]", sources[0]], ["[2]", sources[1]], ["[1]", sources[0]], ["[2]", sources[1]]]
      .filter(([, href]) => href);
    assert.deepEqual(cites, expected);
    assert.equal(await turn.locator(".answer img").count(), 0, "no element made from model text");
    assert.ok((await turn.locator(".answer").textContent()).includes(INJECTION), "markup shown as text");
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    assert.equal(await turn.locator(".answer li").count(), 2, "a markdown list");
    assert.equal(await turn.locator(".answer pre code").textContent(), "gz topic -l [1]", "code kept verbatim");
    await fake("/_fake/reset");
    return { cites: cites.length };
  });

  await check("ask about a selection in an answer sends selected_text", async () => {
    const paragraph = page.locator("#thread > li.turn").first().locator(".answer p").first();
    await paragraph.click({ clickCount: 3 });
    const selected = await page.evaluate(() => document.getSelection().toString().trim());
    assert.ok(selected.length > 0);
    await page.waitForSelector("#ask-selection-button:not([disabled])");
    assert.ok(await page.isVisible("#selection-preview"));
    const turn = await askAndWait(page, { viaSelection: true });
    const body = streams.at(-1).body;
    assert.equal(body.selected_text, selected.slice(0, 8000));
    assert.equal(body.message, "Explain this passage.");
    assert.equal(await turn.locator(".badge").textContent(), "about the selection");
    assert.equal(normalize(await turn.locator("blockquote.quoted").textContent()), normalize(selected));
    assert.ok(await page.isHidden("#selection-preview"), "the selection is used once");
  });

  await check("a failure mid-answer shows the error, and Try again answers", async () => {
    await fake("/_fake/config", { fail_after_chunks: 2, words_per_chunk: 2 });
    const failed = await askAndWait(page, { question: "What is a URDF file?", expect: "error" });
    const error = await failed.locator(".error").textContent();
    assert.match(error, /The answer failed/);
    await fake("/_fake/reset");
    const before = await page.locator("#thread > li.turn").count();
    await failed.locator(".error button", { hasText: "Try again" }).click();
    await lastTurn(page).locator(".meta", { hasText: "Answered" }).waitFor();
    assert.equal(await page.locator("#thread > li.turn").count(), before, "the failed turn is replaced");
    return { error: normalize(error) };
  });

  const name = "Ada Reader";
  const account = { email: `ui-${Date.now()}-${Math.random().toString(36).slice(2, 8)}@example.com`, password: "a long enough password" };
  await check("sign up through the form signs the reader in with an HttpOnly session cookie", async () => {
    await page.fill("#auth-name", name);
    await page.fill("#auth-email", account.email);
    await page.fill("#auth-password", account.password);
    await submitAuth(page, "#sign-up-button");
    assert.equal(await page.textContent("#user-name"), name);
    assert.equal(await page.textContent("#account-status"), `Signed in as ${name}`);
    // The guest's conversations became the reader's: the thread carries on, the token is spent.
    await page.waitForFunction(() => sessionStorage.getItem("lectern.guest_token") === null);
    assert.ok(await page.locator("#thread > li.turn").count() > 0, "the open conversation is kept");
    const mine = await apiFromPage(page, "/api/chat/conversations");
    assert.ok(mine.body.conversations.some((c) => c.id === firstConversation.id), "claimed by the reader");
    const cookie = (await context.cookies()).find((c) => c.name === "better-auth.session_token");
    assert.ok(cookie?.httpOnly, "the session cookie is HttpOnly");
  });

  const chosen = { python_level: "advanced", ros2_level: "beginner", hardware_access: "jetson", answer_depth: "brief" };
  await check("the profile form offers the allowed values and saves them", async () => {
    await page.waitForSelector("#profile-form:not([hidden]) select#profile-python_level");
    const options = (await apiFromPage(page, "/api/profile/options")).body;
    const hardware = await page.locator("#profile-hardware_access option").evaluateAll((os) => os.map((o) => o.value));
    assert.deepEqual(hardware, ["", "simulation_only", "gpu_workstation", "jetson", "physical_robot"]);
    for (const [field, value] of Object.entries(chosen)) await page.selectOption(`#profile-${field}`, value);
    await page.fill("#profile-goals", "Build a walking robot");
    await page.click("#profile-save");
    await page.locator("#profile-status", { hasText: "Profile saved." }).waitFor();
    const { status, body } = await apiFromPage(page, "/api/profile/me");
    assert.equal(status, 200);
    for (const [field, value] of Object.entries(chosen)) assert.equal(body[field], value, field);
    assert.equal(body.goals, "Build a walking robot");
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]');
    await page.waitForSelector("#signed-in:not([hidden])");
    await page.waitForFunction(() => document.getElementById("profile-python_level")?.value === "advanced");
    assert.equal(await page.inputValue("#profile-hardware_access"), "jetson");
    return { option_fields: Object.keys(options?.fields ?? options ?? {}).length };
  });

  await check("every form control and button has an accessible name", async () => {
    const unnamed = await page.evaluate(() => [...document.querySelectorAll("input, select, textarea, button")]
      .filter((node) => node.getClientRects().length > 0)
      .filter((node) => !(node.labels?.length || node.getAttribute("aria-label") || (node.tagName === "BUTTON" && node.textContent.trim())))
      .map((node) => node.id || node.outerHTML.slice(0, 80)));
    assert.deepEqual(unnamed, []);
  });

  await check("a signed-in reader's question is answered without a guest token", async () => {
    await askAndWait(page, { question: "Which sensors can a Jetson read?" });
    const { headers, body } = streams.at(-1);
    assert.equal(headers["x-guest-token"], undefined);
    assert.equal(body.conversation_id, firstConversation.id, "the claimed conversation continues");
  });

  await check("earlier conversations can be reopened and deleted", async () => {
    const turns = await page.locator("#thread > li.turn").count();
    await page.click("#new-conversation");
    assert.equal(await page.locator("#thread > li.turn").count(), 0);
    await page.locator("#history summary").click();
    const item = page.locator("#history-list button.open-conversation").first();
    await item.click();
    await page.waitForFunction((n) => document.querySelectorAll("#thread > li.turn").length === n, turns);
    assert.equal(await item.getAttribute("aria-current"), "true");
    const first = page.locator("#thread > li.turn").first();
    assert.equal(normalize(await first.locator(".answer").innerText()), firstConversation.answer);
    assert.ok(await first.locator("a.cite").count() > 0, "citations are links again");
    assert.equal(await first.locator(".feedback button", { hasText: /^Helpful$/ }).getAttribute("aria-pressed"), "true");
    // A question now continues the reopened conversation.
    await askAndWait(page, { question: "One more thing about cameras?" });
    assert.equal(streams.at(-1).body.conversation_id, firstConversation.id);
    const count = await page.locator("#history-list li").count();
    page.once("dialog", (dialog) => dialog.accept());
    await page.locator("#history-list li").first().locator("button", { hasText: "Delete" }).click();
    await page.waitForFunction((n) => document.querySelectorAll("#history-list li").length === n - 1, count);
    assert.equal(await page.locator("#thread > li.turn").count(), 0, "the deleted conversation is closed");
    assert.equal((await apiFromPage(page, `/api/chat/conversations/${firstConversation.id}`)).status, 404);
  });

  let chapter;
  await check("a chapter summary is shown, and a selection in it can be asked about", async () => {
    await page.locator("#chapter-list .chapter-button").first().click();
    chapter = await page.textContent("#chapter-title");
    await page.click("#summary-button");
    await page.locator("#chapter-meta", { hasText: "Summary" }).waitFor({ timeout: 60000 });
    const summary = normalize(await page.textContent("#chapter-output"));
    assert.ok(summary.length > 20, "the summary has text");
    await page.locator("#chapter-output p").first().click({ clickCount: 3 });
    await page.waitForSelector("#ask-selection-button:not([disabled])");
    await page.fill("#question", "What does this mean for a beginner?");
    await askAndWait(page, { viaSelection: true });
    const body = streams.at(-1).body;
    assert.equal(body.message, "What does this mean for a beginner?");
    assert.ok(body.selected_text && summary.includes(normalize(body.selected_text)), "the summary passage is sent");
    await screenshot(page, "reader-1280-summary", { fullPage: true });
    return { chapter };
  });

  await check("a question limited to the open chapter is answered from that chapter", async () => {
    await page.check("#chapter-scope");
    assert.equal(normalize(await page.textContent("label:has(#chapter-scope)")), `Only “${chapter}”`);
    const turn = await askAndWait(page, { question: "What is this chapter about?" });
    const body = streams.at(-1).body;
    const { body: listing } = await apiFromPage(page, "/api/chapters");
    const open = listing.chapters.find((c) => c.title === chapter);
    assert.equal(body.chapter_id, open.id);
    const paths = await turn.locator("ol.sources .source-path").allTextContents();
    assert.ok(paths.length > 0 && paths.every((p) => p.trim() === open.source_path), paths.join(","));
    await page.uncheck("#chapter-scope");
  });

  await check("personalize streams the chapter rewritten for the reader", async () => {
    await page.click("#personalize-button");
    await page.locator("#chapter-meta", { hasText: "Personalized" }).waitFor({ timeout: 60000 });
    assert.ok(await page.isHidden("#chapter-error"));
    assert.ok(normalize(await page.textContent("#chapter-output")).length > 20);
  });

  await check("translate into Urdu streams a right-to-left version", async () => {
    await page.selectOption("#translate-language", "ur");
    await page.click("#translate-button");
    await page.locator("#chapter-meta", { hasText: "Translated (Urdu)" }).waitFor({ timeout: 60000 });
    assert.equal(await page.getAttribute("#chapter-output", "dir"), "rtl");
    assert.equal(await page.getAttribute("#chapter-output", "lang"), "ur");
    assert.ok(normalize(await page.textContent("#chapter-output")).length > 20);
  });

  await check("sign out returns to guest mode and ends the session", async () => {
    await page.click("#sign-out-button");
    await page.waitForSelector("#auth-form:not([hidden])");
    assert.equal(await page.textContent("#account-status"), "Reading as a guest");
    assert.ok(await page.isDisabled("#personalize-button"));
    const { body } = await apiFromPage(page, "/api/auth/get-session");
    assert.equal(body, null);
    const { status } = await apiFromPage(page, "/api/profile/me");
    assert.equal(status, 401);
    assert.equal(await page.locator("#thread > li.turn").count(), 0, "the reader's conversation is closed");
  });

  await check("signing in again brings back the reader's profile", async () => {
    await page.fill("#auth-email", account.email);
    await page.fill("#auth-password", account.password);
    await submitAuth(page, "#sign-in-button");
    assert.equal(await page.textContent("#user-name"), name);
    await page.waitForFunction(() => document.getElementById("profile-python_level")?.value === "advanced");
    await page.click("#sign-out-button");
    await page.waitForSelector("#auth-form:not([hidden])");
    await page.fill("#auth-email", account.email);
    await page.fill("#auth-password", "a wrong password");
    await page.click("#sign-in-button");
    await page.waitForSelector("#auth-error:not([hidden])");
    assert.ok(await page.isHidden("#signed-in"), "a wrong password does not sign in");
    return { error: await page.textContent("#auth-error") };
  });

  await check("a spent guest token is dropped and the guest carries on", async () => {
    // The token claimed at sign-up no longer works; a tab still holding it starts afresh.
    await page.evaluate((token) => sessionStorage.setItem("lectern.guest_token", token), firstConversation.guestToken);
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]');
    assert.equal(await page.evaluate(() => sessionStorage.getItem("lectern.guest_token")), null);
    await askAndWait(page, { question: "What is a launch file?" });
    const token = await page.evaluate(() => sessionStorage.getItem("lectern.guest_token"));
    assert.ok(token && token !== firstConversation.guestToken, "a new guest token");
  });

  await check("the page fits a narrow screen", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling (${overflow}px too wide)`);
    await askAndWait(page, { question: "What is Gazebo?" });
    const after = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(after <= 0, `an answer does not widen the page (${after}px)`);
    await screenshot(page, "reader-390", { fullPage: true });
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
