// The demo reader page: sign-in, profile, chapters with summaries, and streamed answers with
// citations, all through Lectern's public API on the gateway's origin.
import { ApiError, api, streamEvents } from "./api.js";
import { el, outLink, renderRich, safeHref } from "./render.js";

const GUEST_TOKEN_KEY = "lectern.guest_token";
const MAX_SELECTION = 8000;
const DEFAULT_SELECTION_QUESTION = "Explain this passage.";
const RTL_LANGUAGES = new Set(["ur", "ar"]);
const PROFILE_LABELS = {
  python_level: "Python",
  cpp_level: "C++",
  ai_ml_level: "AI / machine learning",
  ros2_level: "ROS 2",
  hardware_access: "Hardware you can use",
  operating_system: "Operating system",
  answer_depth: "Answer depth",
  goals: "Your goals",
};

const $ = (id) => document.getElementById(id);

const state = {
  user: null,
  chapters: [],
  chapter: null,
  conversationId: null,
  selection: "",
  chatAbort: null,
  chapterAbort: null,
  profileFields: [],
};

// ---- small helpers ---------------------------------------------------------------------------

function show(node, visible) {
  node.hidden = !visible;
}

function showError(node, error) {
  node.textContent = error ? messageOf(error) : "";
  show(node, Boolean(error));
}

function messageOf(error) {
  if (error instanceof ApiError) {
    const wait = error.retryAfter ? ` (retry in ${error.retryAfter} s)` : "";
    return `${error.message}${wait}`;
  }
  if (error?.name === "TimeoutError" || error?.name === "StreamTimeout") {
    return "The server took too long to answer.";
  }
  return error?.message || "Something went wrong.";
}

function humanize(value) {
  const text = String(value).replaceAll("_", " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function guestToken() {
  return sessionStorage.getItem(GUEST_TOKEN_KEY);
}

// ---- account ---------------------------------------------------------------------------------

async function loadSession() {
  try {
    const session = await api("/api/auth/get-session");
    setUser(session?.user ?? null);
  } catch {
    setUser(null);
  }
}

function setUser(user) {
  const changed = (state.user?.id ?? null) !== (user?.id ?? null);
  state.user = user;
  show($("auth-form"), !user);
  show($("signed-in"), Boolean(user));
  show($("profile-form"), Boolean(user));
  $("user-name").textContent = user?.name || user?.email || "";
  $("user-email").textContent = user?.name ? `(${user.email})` : "";
  $("account-status").textContent = user ? `Signed in as ${user.name || user.email}` : "Reading as a guest";
  show($("account-link"), !user);
  updateChapterActions();
  if (changed) startNewConversation();
  if (user) loadProfile();
}

async function onAuthSubmit(event) {
  event.preventDefault();
  const signUp = event.submitter?.value === "sign-up";
  const email = $("auth-email").value.trim();
  const password = $("auth-password").value;
  const name = $("auth-name").value.trim() || email.split("@")[0];
  showError($("auth-error"), null);
  setBusy($("auth-form"), true);
  try {
    const body = signUp ? { name, email, password } : { email, password };
    await api(signUp ? "/api/auth/sign-up/email" : "/api/auth/sign-in/email", { method: "POST", body });
    $("auth-password").value = "";
    await loadSession();
  } catch (error) {
    showError($("auth-error"), error);
  } finally {
    setBusy($("auth-form"), false);
  }
}

async function signOut() {
  try {
    await api("/api/auth/sign-out", { method: "POST", body: {} });
  } catch (error) {
    $("account-status").textContent = `Sign-out failed: ${messageOf(error)}`;
    return;
  }
  setUser(null);
}

function setBusy(form, busy) {
  for (const button of form.querySelectorAll("button")) button.disabled = busy;
  form.setAttribute("aria-busy", String(busy));
}

// ---- profile ---------------------------------------------------------------------------------

/**
 * Fields from `GET /api/profile/options`: `{field: [values], ..., <text field>_max_chars: n}`.
 * A list makes a choice; a `_max_chars` limit makes a free-text field of that name.
 */
function profileFieldsFrom(options) {
  return Object.entries(options ?? {}).flatMap(([key, spec]) => {
    if (Array.isArray(spec)) return [{ name: key, values: spec.map(String), maxLength: null }];
    if (key.endsWith("_max_chars") && Number.isInteger(spec)) {
      return [{ name: key.slice(0, -"_max_chars".length), values: null, maxLength: spec }];
    }
    return [];
  });
}

function profileInput(field) {
  const id = `profile-${field.name}`;
  const label = el("label", { for: id, text: PROFILE_LABELS[field.name] ?? humanize(field.name) });
  if (!field.values) {
    return [label, el("textarea", { id, name: field.name, rows: 2, maxLength: field.maxLength })];
  }
  const select = el("select", { id, name: field.name },
    el("option", { value: "", text: "Not set" }),
    field.values.map((value) => el("option", { value, text: humanize(value) })));
  return [label, select];
}

async function loadProfileOptions() {
  if (state.profileFields.length) return;
  state.profileFields = profileFieldsFrom(await api("/api/profile/options"));
  $("profile-fields").replaceChildren(...state.profileFields.flatMap(profileInput));
}

async function loadProfile() {
  const status = $("profile-status");
  try {
    await loadProfileOptions();
    let profile = null;
    try {
      profile = await api("/api/profile/me");
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) throw error;
    }
    for (const field of state.profileFields) {
      $(`profile-${field.name}`).value = profile?.[field.name] ?? "";
    }
    status.textContent = profile ? "" : "No profile yet: tell the book about your background.";
  } catch (error) {
    status.textContent = `Could not load your profile: ${messageOf(error)}`;
  }
}

async function saveProfile(event) {
  event.preventDefault();
  const body = {};
  for (const field of state.profileFields) {
    // "Not set" (or empty goals) is sent as null, which clears the field.
    body[field.name] = $(`profile-${field.name}`).value.trim() || null;
  }
  const status = $("profile-status");
  setBusy($("profile-form"), true);
  try {
    await api("/api/profile/me", { method: "PUT", body });
    status.textContent = "Profile saved.";
  } catch (error) {
    status.textContent = `Could not save: ${messageOf(error)}`;
  } finally {
    setBusy($("profile-form"), false);
  }
}

async function deleteProfile() {
  if (!window.confirm("Delete your profile and your conversations?")) return;
  const status = $("profile-status");
  try {
    await api("/api/profile/me", { method: "DELETE" });
    for (const field of state.profileFields) $(`profile-${field.name}`).value = "";
    startNewConversation();
    status.textContent = "Profile deleted.";
  } catch (error) {
    status.textContent = `Could not delete: ${messageOf(error)}`;
  }
}

// ---- chapters --------------------------------------------------------------------------------

async function loadChapters() {
  const status = $("chapters-status");
  try {
    const { chapters } = await api("/api/chapters");
    state.chapters = chapters;
    status.textContent = chapters.length ? `${chapters.length} chapters` : "No chapters yet: the book has not been ingested.";
    renderChapterList();
  } catch (error) {
    status.textContent = `Could not load chapters: ${messageOf(error)}`;
  }
}

function renderChapterList() {
  const filter = $("chapter-filter").value.trim().toLowerCase();
  const shown = state.chapters.filter((c) => !filter
    || c.title.toLowerCase().includes(filter) || c.source_path.toLowerCase().includes(filter));
  $("chapter-list").replaceChildren(...shown.map((chapter) => el("li", {},
    el("button", {
      type: "button",
      class: "chapter-button",
      "aria-current": chapter.id === state.chapter?.id ? "true" : null,
      title: chapter.source_path,
      onclick: () => openChapter(chapter),
    }, el("span", { class: "chapter-title", text: chapter.title }),
    el("span", { class: "chapter-path", text: chapter.source_path })))));
}

function openChapter(chapter) {
  state.chapterAbort?.abort();
  state.chapter = chapter;
  $("chapter-title").textContent = chapter.title;
  const link = $("chapter-link");
  const href = safeHref(chapter.url);
  if (href) link.href = href;
  show(link, Boolean(href));
  $("chapter-output").replaceChildren();
  $("chapter-meta").textContent = "";
  showError($("chapter-error"), null);
  $("chapter-scope").disabled = false;
  $("chapter-scope-text").textContent = `Only “${chapter.title}”`;
  show($("chapter-view"), true);
  updateChapterActions();
  renderChapterList();
  $("chapter-title").focus();
}

function updateChapterActions(busy = Boolean(state.chapterAbort)) {
  const signedIn = Boolean(state.user);
  $("personalize-button").disabled = !signedIn || busy;
  $("chapter-hint").textContent = signedIn ? "" : "Sign in to get this chapter rewritten for your background.";
}

async function showSummary() {
  const chapter = state.chapter;
  const output = $("chapter-output");
  showError($("chapter-error"), null);
  $("chapter-meta").textContent = "Summarizing…";
  output.replaceChildren();
  setOutputLanguage(null);
  $("summary-button").disabled = true;
  try {
    const result = await api(`/api/summary/chapters/${encodeURIComponent(chapter.id)}`, { timeoutMs: 120000 });
    if (state.chapter !== chapter) return;
    renderRich(output, result.summary ?? "");
    $("chapter-meta").textContent = [
      "Summary",
      result.model && `model ${result.model}`,
      result.cached ? "from cache" : "freshly generated",
      result.generated_at && `generated ${new Date(result.generated_at).toLocaleString()}`,
    ].filter(Boolean).join(" · ");
  } catch (error) {
    $("chapter-meta").textContent = "";
    showError($("chapter-error"), error);
  } finally {
    $("summary-button").disabled = false;
  }
}

function textOfJson(result) {
  for (const key of ["text", "content", "personalized", "summary", "markdown"]) {
    if (typeof result?.[key] === "string") return result[key];
  }
  return "";
}

/** Streams a rewritten version of the open chapter (personalized or translated) into the panel. */
async function streamChapterVersion({ path, body, label, busyText, language = null }) {
  const chapter = state.chapter;
  const output = $("chapter-output");
  const controller = new AbortController();
  state.chapterAbort?.abort();
  state.chapterAbort = controller;
  showError($("chapter-error"), null);
  output.replaceChildren();
  setOutputLanguage(language);
  output.setAttribute("aria-busy", "true");
  $("chapter-meta").textContent = busyText;
  setChapterBusy(true);
  let text = "";
  let finished = false;
  try {
    const url = `/api/summary/chapters/${encodeURIComponent(chapter.id)}/${path}`;
    for await (const { event, data } of streamEvents(url, { body, signal: controller.signal, idleMs: 120000 })) {
      if (event === "token") {
        text += data.text ?? "";
        renderRich(output, text);
      } else if (event === "json") {
        renderRich(output, textOfJson(data));
        $("chapter-meta").textContent = doneLine(label, data);
        finished = true;
      } else if (event === "done") {
        $("chapter-meta").textContent = doneLine(label, data);
        finished = true;
      } else if (event === "error") {
        showError($("chapter-error"), new ApiError({ status: 200, code: data.code, message: data.message }));
        $("chapter-meta").textContent = "";
        finished = true;
      }
    }
    if (!finished) throw new Error("The connection closed before the chapter was finished.");
  } catch (error) {
    if (!controller.signal.aborted) showError($("chapter-error"), error);
    $("chapter-meta").textContent = controller.signal.aborted ? "Stopped." : "";
  } finally {
    output.removeAttribute("aria-busy");
    if (state.chapterAbort === controller) {
      state.chapterAbort = null;
      setChapterBusy(false);
    }
  }
}

function setChapterBusy(busy) {
  $("summary-button").disabled = busy;
  $("translate-button").disabled = busy;
  show($("chapter-stop"), busy);
  updateChapterActions(busy);
}

/** Marks the panel's language (and direction: Urdu and Arabic read right to left). */
function setOutputLanguage(language) {
  const output = $("chapter-output");
  if (language) {
    output.lang = language;
    output.dir = RTL_LANGUAGES.has(language) ? "rtl" : "ltr";
  } else {
    output.removeAttribute("lang");
    output.removeAttribute("dir");
  }
}

function personalizeChapter() {
  return streamChapterVersion({
    path: "personalized", label: "Personalized for your profile", busyText: "Rewriting this chapter for you…",
  });
}

function translateChapter() {
  const language = $("translate-language").value;
  return streamChapterVersion({
    path: "translation", body: { language }, language,
    label: `Translated (${$("translate-language").selectedOptions[0].textContent})`,
    busyText: "Translating this chapter…",
  });
}

// ---- the conversation ------------------------------------------------------------------------

function startNewConversation() {
  state.chatAbort?.abort();
  state.conversationId = null;
  $("thread").replaceChildren();
  show($("thread-empty"), true);
}

function timingText(timings) {
  const names = { retrieval: "retrieval", first_token: "first token", total: "total" };
  return Object.entries(names)
    .filter(([key]) => typeof timings?.[key] === "number")
    .map(([key, name]) => `${name} ${Math.round(timings[key])} ms`);
}

function doneLine(label, data) {
  const model = data?.model ?? data?.usage?.model;
  return [
    label,
    model && `model ${model}`,
    data?.answerer && `answerer ${data.answerer}`,
    data?.cached === true && "from cache",
    data?.finish_reason && data.finish_reason !== "stop" && `finish: ${data.finish_reason}`,
    ...timingText(data?.timings_ms),
  ].filter(Boolean).join(" · ");
}

/** One question and its answer in the thread; keeps its own text and sources. */
class Turn {
  constructor(question, selectedText) {
    this.text = "";
    this.sources = new Map();
    this.answer = el("div", { class: "answer rich selectable", "aria-busy": "true" },
      el("span", { class: "pending", text: "Searching the book…" }));
    this.sourceList = el("ol", { class: "sources", "aria-label": "Sources" });
    this.sourcesBox = el("section", { class: "sources-box", hidden: true },
      el("h3", { text: "Sources" }), this.sourceList);
    this.meta = el("p", { class: "meta" });
    this.error = el("div", { class: "error", role: "alert", hidden: true });
    this.mode = el("span", { class: "badge", hidden: true });
    this.node = el("li", { class: "turn" },
      el("div", { class: "question" }, el("span", { class: "who", text: "You" }), this.mode,
        el("p", { text: question }),
        selectedText ? el("blockquote", { class: "quoted", text: selectedText }) : null),
      el("div", { class: "reply" }, el("span", { class: "who", text: "Lectern" }),
        this.answer, this.sourcesBox, this.meta, this.error));
    this.scheduled = false;
  }

  setMode(mode) {
    if (mode === "selection") {
      this.mode.textContent = "about the selection";
      show(this.mode, true);
    }
  }

  setSources(sources) {
    this.sources = new Map(sources.map((s) => [s.n, s]));
    this.sourceList.replaceChildren(...sources.map((source) => el("li", { value: source.n },
      outLink(source.url, source.title || source.source_path || `Source ${source.n}`, { class: "source-link" }),
      source.section && source.section !== source.title ? el("span", { class: "section", text: ` — ${source.section}` }) : null,
      el("span", { class: "source-path", text: ` ${source.source_path ?? ""}` }),
      source.snippet ? el("details", { class: "snippet" }, el("summary", { text: "Excerpt" }),
        el("p", { class: "selectable", text: source.snippet })) : null)));
    show(this.sourcesBox, sources.length > 0);
    this.render();
  }

  addToken(text) {
    this.text += text;
    // Re-render at most once per frame: fast streams would otherwise rebuild the DOM per token.
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.render();
    });
  }

  render() {
    if (this.text) renderRich(this.answer, this.text, this.sources);
  }

  finish(data) {
    this.render();
    this.answer.removeAttribute("aria-busy");
    if (!this.text) this.answer.replaceChildren(el("p", { class: "hint", text: "(no answer text)" }));
    const cited = new Set(data?.citations ?? []);
    for (const item of this.sourceList.children) {
      item.classList.toggle("cited", cited.has(Number(item.value)));
    }
    this.meta.textContent = doneLine("Answered", data);
  }

  fail(error, retry) {
    this.render();
    this.answer.removeAttribute("aria-busy");
    if (!this.text) this.answer.replaceChildren();
    const code = error.code ? ` (${error.code})` : "";
    this.error.replaceChildren(el("strong", { text: "The answer failed" }), `${code}: ${error.message}`);
    if (error.retryable && retry) {
      this.error.append(" ", el("button", { type: "button", class: "secondary", text: "Try again", onclick: retry }));
    }
    show(this.error, true);
  }

  stopped() {
    this.render();
    this.answer.removeAttribute("aria-busy");
    this.meta.textContent = "Stopped.";
  }
}

function setAsking(busy) {
  $("ask-button").disabled = busy;
  $("ask-selection-button").disabled = busy || !state.selection;
  show($("stop-button"), busy);
}

async function ask({ message, selectedText = null }) {
  if (state.chatAbort) return;
  const turn = new Turn(message, selectedText);
  $("thread").append(turn.node);
  show($("thread-empty"), false);
  turn.node.scrollIntoView({ block: "nearest" });
  const controller = new AbortController();
  state.chatAbort = controller;
  setAsking(true);
  const body = {
    message,
    conversation_id: state.conversationId,
    selected_text: selectedText,
    chapter_id: $("chapter-scope").checked && state.chapter ? state.chapter.id : null,
    top_k: 5,
  };
  const headers = {};
  if (!state.user && guestToken()) headers["X-Guest-Token"] = guestToken();
  const retry = () => {
    turn.node.remove();
    ask({ message, selectedText });
  };
  let finished = false;
  try {
    for await (const { event, data } of streamEvents("/api/chat/stream", { body, headers, signal: controller.signal })) {
      if (event === "meta") {
        state.conversationId = data.conversation_id ?? state.conversationId;
        if (data.guest_token) sessionStorage.setItem(GUEST_TOKEN_KEY, data.guest_token);
        turn.setMode(data.mode);
      } else if (event === "sources") {
        turn.setSources(data.sources ?? []);
      } else if (event === "token") {
        turn.addToken(data.text ?? "");
      } else if (event === "done") {
        turn.finish(data);
        finished = true;
      } else if (event === "error") {
        turn.fail(data, retry);
        finished = true;
      }
    }
    if (!finished) {
      turn.fail({ code: "stream_closed", message: "the connection closed before the answer was finished.", retryable: true }, retry);
    }
  } catch (error) {
    if (controller.signal.aborted) {
      turn.stopped();
    } else {
      if (error instanceof ApiError && error.status === 404 && body.conversation_id) {
        // The conversation is gone (deleted, or it belonged to another session): start afresh.
        state.conversationId = null;
      }
      const retryable = !(error instanceof ApiError) || error.status === 429 || error.status >= 500;
      turn.fail({ code: error.code, message: messageOf(error), retryable }, retry);
    }
  } finally {
    state.chatAbort = null;
    setAsking(false);
  }
}

function onAskSubmit(event) {
  event.preventDefault();
  const message = $("question").value.trim();
  if (!message) return;
  const selectedText = state.selection || null;
  $("question").value = "";
  clearSelection();
  ask({ message, selectedText });
}

function askAboutSelection() {
  if (!state.selection) return;
  const message = $("question").value.trim() || DEFAULT_SELECTION_QUESTION;
  const selectedText = state.selection;
  $("question").value = "";
  clearSelection();
  ask({ message, selectedText });
}

// ---- selection -------------------------------------------------------------------------------

function elementOf(node) {
  return node.nodeType === Node.ELEMENT_NODE ? node : node.parentElement;
}

/** Remembers text selected inside an answer or a chapter text, for "Ask about selection". */
function onSelectionChange() {
  const selection = document.getSelection();
  if (!selection || selection.isCollapsed || !selection.rangeCount) return;
  const range = selection.getRangeAt(0);
  const container = elementOf(range.startContainer)?.closest(".selectable")
    ?? elementOf(range.endContainer)?.closest(".selectable");
  if (!container) return;
  // A triple-click selects up to the start of the next block, which may lie outside the text.
  const clipped = range.cloneRange();
  if (!container.contains(range.startContainer)) clipped.setStart(container, 0);
  if (!container.contains(range.endContainer)) clipped.setEnd(container, container.childNodes.length);
  const text = clipped.toString().trim().slice(0, MAX_SELECTION);
  if (!text) return;
  state.selection = text;
  $("selection-text").textContent = text.length > 300 ? `${text.slice(0, 300)}…` : text;
  show($("selection-preview"), true);
  $("ask-selection-button").disabled = Boolean(state.chatAbort);
}

function clearSelection() {
  state.selection = "";
  show($("selection-preview"), false);
  $("ask-selection-button").disabled = true;
}

// ---- wiring ----------------------------------------------------------------------------------

function wire() {
  $("auth-form").addEventListener("submit", onAuthSubmit);
  $("sign-out-button").addEventListener("click", signOut);
  $("profile-form").addEventListener("submit", saveProfile);
  $("profile-delete").addEventListener("click", deleteProfile);
  $("chapter-filter").addEventListener("input", renderChapterList);
  $("summary-button").addEventListener("click", showSummary);
  $("personalize-button").addEventListener("click", personalizeChapter);
  $("translate-button").addEventListener("click", translateChapter);
  $("chapter-stop").addEventListener("click", () => state.chapterAbort?.abort());
  $("ask-form").addEventListener("submit", onAskSubmit);
  $("question").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("ask-form").requestSubmit();
  });
  $("stop-button").addEventListener("click", () => state.chatAbort?.abort());
  $("new-conversation").addEventListener("click", startNewConversation);
  $("selection-clear").addEventListener("click", clearSelection);
  // Keep the selection alive when the button is pressed (a focus change could collapse it).
  $("ask-selection-button").addEventListener("mousedown", (event) => event.preventDefault());
  $("ask-selection-button").addEventListener("click", askAboutSelection);
  document.addEventListener("selectionchange", onSelectionChange);
}

wire();
updateChapterActions();
await Promise.all([loadSession(), loadChapters()]);
document.body.dataset.ready = "true";
