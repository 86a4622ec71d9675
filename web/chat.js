// The conversation: streamed answers (resumed after a dropped connection), sources and
// citations, feedback, ask-about-selection, and the reader's or guest's earlier conversations.
import { ApiError, api, streamEvents } from "./api.js";
import { el, outLink, renderRich } from "./render.js";
import { $, doneLine, messageOf, show } from "./ui.js";

const GUEST_TOKEN_KEY = "lectern.guest_token";
// The open conversation survives a reload of the tab (and only of this tab).
const CONVERSATION_KEY = "lectern.conversation_id";
const MAX_SELECTION = 8000;
// Waits before each attempt to pick a dropped answer up again (a network blip may last a while).
const RESUME_DELAYS_MS = [500, 1500, 4000];
const DEFAULT_SELECTION_QUESTION = "Explain this passage.";

const chat = {
  signedIn: false,
  conversationId: null,
  abort: null,
  selection: "",
  chapterId: () => null,
};

function setConversation(id) {
  chat.conversationId = id;
  if (id) sessionStorage.setItem(CONVERSATION_KEY, id);
  else sessionStorage.removeItem(CONVERSATION_KEY);
}

function guestToken() {
  return sessionStorage.getItem(GUEST_TOKEN_KEY);
}

function forgetGuest() {
  sessionStorage.removeItem(GUEST_TOKEN_KEY);
  setConversation(null);
}

/** Who owns the conversation: the session cookie for a reader, the guest token for a guest. */
function ownerHeaders() {
  const token = guestToken();
  return !chat.signedIn && token ? { "X-Guest-Token": token } : {};
}

// Why an answer quotes the book instead of the model (`done.fallback`, stored with the answer).
const FALLBACK_LABELS = {
  rate_limited: "Quoted from the book: the language model is busy right now.",
  unavailable: "Quoted from the book: the language model is unavailable right now.",
  timeout: "Quoted from the book: the language model did not answer in time.",
  budget: "Quoted from the book: today's allowance of model answers is used up.",
};

/** One question and its answer in the thread; keeps its own text, sources and message id. */
class Turn {
  constructor(question, selectedText) {
    this.text = "";
    this.messageId = null;
    this.sources = new Map();
    this.scheduled = false;
    // dir="auto": an Urdu answer reads right to left, an English one left to right.
    this.answer = el("div", { class: "answer rich selectable", dir: "auto", "aria-busy": "true" },
      el("span", { class: "pending", text: "Searching the book…" }));
    this.sourceList = el("ol", { class: "sources", "aria-label": "Sources" });
    this.sourcesBox = el("section", { class: "sources-box", hidden: true },
      el("h3", { text: "Sources" }), this.sourceList);
    this.meta = el("p", { class: "meta" });
    this.note = el("p", { class: "note", hidden: true });
    this.checks = null;
    this.checkLine = el("p", { class: "check-line", hidden: true });
    this.fallbackLabel = el("p", { class: "fallback-label", role: "note", hidden: true });
    this.feedback = el("div", { class: "feedback", hidden: true });
    this.error = el("div", { class: "error", role: "alert", hidden: true });
    this.mode = el("span", { class: "badge", hidden: true });
    this.node = el("li", { class: "turn" },
      el("div", { class: "question" }, el("span", { class: "who", text: "You" }), this.mode,
        el("p", { text: question }),
        selectedText ? el("blockquote", { class: "quoted", text: selectedText }) : null),
      el("div", { class: "reply" }, el("span", { class: "who", text: "Lectern" }),
        this.fallbackLabel, this.answer, this.sourcesBox, this.note, this.checkLine, this.meta,
        this.feedback, this.error));
  }

  setMode(mode) {
    show(this.mode, mode === "selection");
    this.mode.textContent = mode === "selection" ? "about the selection" : "";
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
    if (this.text) renderRich(this.answer, this.text, this.sources, this.checks);
  }

  finish(data, rating = null) {
    this.checks = data?.citation_checks ?? null;
    this.render();
    this.showChecks(this.checks ?? []);
    this.fallbackLabel.textContent = FALLBACK_LABELS[data?.fallback] ?? "";
    show(this.fallbackLabel, Boolean(FALLBACK_LABELS[data?.fallback]));
    this.answer.removeAttribute("aria-busy");
    if (!this.text) this.answer.replaceChildren(el("p", { class: "hint", text: "(no answer text)" }));
    const cited = new Set(data?.citations ?? []);
    for (const item of this.sourceList.children) item.classList.toggle("cited", cited.has(Number(item.value)));
    this.meta.textContent = doneLine("Answered", data);
    this.note.textContent = data?.note ?? "";
    // The fallback label already says why the answer quotes the book.
    show(this.note, Boolean(data?.note) && !FALLBACK_LABELS[data?.fallback]);
    if (this.messageId) this.showFeedback(rating);
  }

  showChecks(checks) {
    const unsupported = checks.filter((c) => !c.supported && !c.dangling).length;
    const dangling = checks.filter((c) => c.dangling).length;
    const parts = [
      unsupported && `${unsupported} citation${unsupported > 1 ? "s" : ""} not supported by ${unsupported > 1 ? "their sources" : "its source"}`,
      dangling && `${dangling} citation${dangling > 1 ? "s" : ""} naming no source`,
    ].filter(Boolean);
    this.checkLine.textContent = parts.length ? `Checked: ${parts.join(", ")} (marked in the answer).` : "";
    show(this.checkLine, parts.length > 0);
  }

  fail(error, retry = null) {
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

  showFeedback(rating) {
    const status = el("span", { class: "status", role: "status" });
    const buttons = ["up", "down"].map((value) => el("button", {
      type: "button", class: "secondary small", "aria-pressed": String(rating === value),
      text: value === "up" ? "Helpful" : "Not helpful",
      onclick: () => this.sendFeedback(value, buttons, status),
    }));
    this.feedback.replaceChildren(el("span", { class: "hint", text: "Was this answer useful?" }), ...buttons, status);
    show(this.feedback, true);
  }

  async sendFeedback(rating, buttons, status) {
    try {
      await api(`/api/chat/messages/${encodeURIComponent(this.messageId)}/feedback`,
        { method: "POST", body: { rating }, headers: ownerHeaders() });
      buttons.forEach((b, i) => b.setAttribute("aria-pressed", String(["up", "down"][i] === rating)));
      status.textContent = "Thanks for the feedback.";
    } catch (error) {
      status.textContent = `Feedback not saved: ${messageOf(error)}`;
    }
  }
}

function setAsking(busy) {
  $("ask-button").disabled = busy;
  $("ask-selection-button").disabled = busy || !chat.selection;
  show($("stop-button"), busy);
}

function appendTurn(turn) {
  $("thread").append(turn.node);
  show($("thread-empty"), false);
}

function pause(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}

/** Applies one stream event to the turn; returns true on the last one (done or error). */
function applyEvent(turn, { event, data }, retry) {
  if (event === "meta") {
    setConversation(data.conversation_id ?? chat.conversationId);
    turn.messageId = data.message_id ?? turn.messageId;
    if (data.guest_token) sessionStorage.setItem(GUEST_TOKEN_KEY, data.guest_token);
    turn.setMode(data.mode);
  } else if (event === "sources") {
    turn.setSources(data.sources ?? []);
  } else if (event === "token") {
    turn.addToken(data.text ?? "");
  } else if (event === "done") {
    turn.finish(data);
    return true;
  } else if (event === "error") {
    turn.fail(data, retry);
    return true;
  }
  return false;
}

/**
 * Follows the answer's events to the end. When the connection drops (or stalls) after `meta`,
 * it picks up where it left off with `GET /api/chat/messages/{id}/events` + `Last-Event-ID`.
 */
async function follow(turn, firstStream, { signal, retry }) {
  let stream = firstStream;
  let lastId = "0";
  for (let resumes = 0; ; resumes += 1) {
    try {
      for await (const event of stream) {
        if (event.id) lastId = event.id;
        if (applyEvent(turn, event, retry)) return;
      }
    } catch (error) {
      // A resume the gateway could not serve yet (502, 503, 429) is tried again like a dropped
      // connection; a refused question or any other answer is final.
      const busy = error instanceof ApiError && (error.status === 429 || error.status >= 500);
      const resumable = stream !== firstStream && busy;
      if (signal.aborted || !turn.messageId || (error instanceof ApiError && !resumable)) throw error;
    }
    if (!turn.messageId || resumes >= RESUME_DELAYS_MS.length) {
      throw new Error("the connection closed before the answer was finished.");
    }
    turn.meta.textContent = "Connection lost; resuming…";
    await pause(RESUME_DELAYS_MS[resumes], signal);
    stream = streamEvents(`/api/chat/messages/${encodeURIComponent(turn.messageId)}/events`, {
      method: "GET", headers: { ...ownerHeaders(), "Last-Event-ID": lastId }, signal,
    });
  }
}

async function ask({ message, selectedText = null }) {
  if (chat.abort) return;
  const turn = new Turn(message, selectedText);
  appendTurn(turn);
  turn.node.scrollIntoView({ block: "nearest" });
  const controller = new AbortController();
  chat.abort = controller;
  setAsking(true);
  const body = {
    message,
    conversation_id: chat.conversationId,
    selected_text: selectedText,
    chapter_id: $("chapter-scope").checked ? chat.chapterId() : null,
    top_k: 5,
    language: $("answer-language").value || null,
  };
  const retry = () => {
    turn.node.remove();
    ask({ message, selectedText });
  };
  try {
    const stream = streamEvents("/api/chat/stream", { body, headers: ownerHeaders(), signal: controller.signal });
    await follow(turn, stream, { signal: controller.signal, retry });
  } catch (error) {
    if (controller.signal.aborted) {
      turn.stopped();
    } else {
      if (error instanceof ApiError && error.status === 404 && body.conversation_id) {
        // The conversation is gone (deleted elsewhere): the next question starts a new one.
        setConversation(null);
      }
      if (error instanceof ApiError && error.code === "invalid_guest_token") {
        // Spent (claimed in another tab) or expired: carry on as a new guest.
        forgetGuest();
      }
      const retryable = !(error instanceof ApiError) || error.status === 429 || error.status >= 500;
      turn.fail({ code: error.code, message: messageOf(error), retryable }, retry);
    }
  } finally {
    chat.abort = null;
    setAsking(false);
    refreshConversations();
  }
}

function onAskSubmit(event) {
  event.preventDefault();
  const message = $("question").value.trim();
  if (!message) return;
  const selectedText = chat.selection || null;
  $("question").value = "";
  clearSelection();
  ask({ message, selectedText });
}

function askAboutSelection() {
  if (!chat.selection) return;
  const message = $("question").value.trim() || DEFAULT_SELECTION_QUESTION;
  const selectedText = chat.selection;
  $("question").value = "";
  clearSelection();
  ask({ message, selectedText });
}

// ---- earlier conversations -------------------------------------------------------------------

export function startNewConversation() {
  chat.abort?.abort();
  setConversation(null);
  $("thread").replaceChildren();
  show($("thread-empty"), true);
  markCurrentConversation();
}

function markCurrentConversation() {
  for (const button of $("history-list").querySelectorAll("button.open-conversation")) {
    button.setAttribute("aria-current", String(button.dataset.id === chat.conversationId));
  }
}

/** Lists the owner's conversations (a guest without a token has none). */
export async function refreshConversations() {
  let conversations = [];
  try {
    if (chat.signedIn || guestToken()) {
      ({ conversations } = await api("/api/chat/conversations", { headers: ownerHeaders() }));
    }
  } catch (error) {
    if (error instanceof ApiError && error.code === "invalid_guest_token") forgetGuest();
    else $("history-status").textContent = `Could not list conversations: ${messageOf(error)}`;
    return;
  }
  $("history-status").textContent = "";
  $("history-count").textContent = String(conversations.length);
  show($("history"), conversations.length > 0);
  $("history-list").replaceChildren(...conversations.map((c) => el("li", {},
    el("button", {
      type: "button", class: "open-conversation", "data-id": c.id,
      onclick: () => openConversation(c.id),
    }, el("span", { class: "conversation-title", text: c.title || "Untitled" }),
    el("span", { class: "meta", text: ` ${new Date(c.updated_at).toLocaleString()} · ${c.message_count} messages` })),
    el("button", {
      type: "button", class: "link-button", text: "Delete",
      "aria-label": `Delete the conversation “${c.title || "Untitled"}”`,
      onclick: () => deleteConversation(c),
    }))));
  markCurrentConversation();
}

/** Shows a stored conversation and continues it with the next question. */
async function openConversation(id, { quiet = false } = {}) {
  if (chat.abort) return;
  try {
    const conversation = await api(`/api/chat/conversations/${encodeURIComponent(id)}`, { headers: ownerHeaders() });
    startNewConversation();
    setConversation(conversation.id);
    let question = null;
    for (const message of conversation.messages) {
      if (message.role === "user") {
        question = message;
        continue;
      }
      appendTurn(storedTurn(question, message));
      question = null;
    }
    markCurrentConversation();
  } catch (error) {
    if (quiet) setConversation(null);
    else $("history-status").textContent = `Could not open the conversation: ${messageOf(error)}`;
  }
}

function storedTurn(question, answer) {
  const turn = new Turn(question?.content ?? "", question?.selected_text ?? null);
  turn.messageId = answer.id;
  turn.setMode(answer.mode);
  turn.text = answer.content ?? "";
  turn.setSources(answer.sources ?? []);
  if (answer.status === "complete") turn.finish(answer, answer.feedback);
  else if (answer.status === "failed") turn.fail(answer.error ?? { message: "the answer failed" });
  else turn.fail({ code: answer.status, message: "this answer was not finished." });
  return turn;
}

async function deleteConversation(conversation) {
  if (!window.confirm(`Delete “${conversation.title || "Untitled"}”?`)) return;
  try {
    await api(`/api/chat/conversations/${encodeURIComponent(conversation.id)}`, { method: "DELETE", headers: ownerHeaders() });
    if (chat.conversationId === conversation.id) startNewConversation();
  } catch (error) {
    $("history-status").textContent = `Could not delete: ${messageOf(error)}`;
  }
  refreshConversations();
}

/** Reopens the conversation this tab had open before a reload, if its owner can still see it. */
export async function restoreConversation() {
  const id = sessionStorage.getItem(CONVERSATION_KEY);
  if (id && !chat.conversationId && !$("thread").children.length) await openConversation(id, { quiet: true });
}

/**
 * Called with the session found at page load (`initial`) and when the reader signs in or out.
 * On sign-in a guest's conversations become the reader's (the guest token then stops
 * working), and the open one carries on.
 */
export async function setSignedIn(signedIn, { initial = false } = {}) {
  const wasSignedIn = chat.signedIn;
  chat.signedIn = signedIn;
  let kept = initial;
  if (signedIn && !wasSignedIn && guestToken()) {
    try {
      const { claimed } = await api("/api/chat/conversations/claim", { method: "POST", headers: { "X-Guest-Token": guestToken() } });
      kept ||= claimed > 0;
      sessionStorage.removeItem(GUEST_TOKEN_KEY);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) sessionStorage.removeItem(GUEST_TOKEN_KEY);
    }
  }
  if (!kept && signedIn !== wasSignedIn) startNewConversation();
  await refreshConversations();
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
  chat.selection = text;
  $("selection-text").textContent = text.length > 300 ? `${text.slice(0, 300)}…` : text;
  show($("selection-preview"), true);
  $("ask-selection-button").disabled = Boolean(chat.abort);
}

function clearSelection() {
  chat.selection = "";
  show($("selection-preview"), false);
  $("ask-selection-button").disabled = true;
}

/** Wires the chat panel; `chapterId()` names the open chapter (for "Only this chapter"). */
export function initChat({ chapterId }) {
  chat.chapterId = chapterId;
  $("ask-form").addEventListener("submit", onAskSubmit);
  $("question").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("ask-form").requestSubmit();
  });
  $("stop-button").addEventListener("click", () => chat.abort?.abort());
  $("new-conversation").addEventListener("click", startNewConversation);
  $("selection-clear").addEventListener("click", clearSelection);
  // Keep the selection alive when the button is pressed (a focus change could collapse it).
  $("ask-selection-button").addEventListener("mousedown", (event) => event.preventDefault());
  $("ask-selection-button").addEventListener("click", askAboutSelection);
  document.addEventListener("selectionchange", onSelectionChange);
}
