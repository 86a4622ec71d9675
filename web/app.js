// The demo reader page's entry: sign-in, the profile form and the chapters (summary, personalized
// and translated versions); the conversation lives in chat.js. Public API, same origin only.
import { ApiError, api, streamEvents } from "./api.js";
import { initChat, refreshConversations, restoreConversation, setSignedIn, startNewConversation } from "./chat.js";
import { el, renderRich, safeHref } from "./render.js";
import { $, doneLine, messageOf, setBusy, show, showError } from "./ui.js";

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
  language: "Answer language",
};
const VALUE_LABELS = { ur: "Urdu (اردو)", en: "English" };

const state = {
  user: null,
  chapters: [],
  chapter: null,
  chapterAbort: null,
  profileFields: [],
};

function humanize(value) {
  const text = String(value).replaceAll("_", " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

// ---- account ---------------------------------------------------------------------------------

async function loadSession({ initial = false } = {}) {
  let user = null;
  try {
    user = (await api("/api/auth/get-session"))?.user ?? null;
  } finally {
    await setUser(user, { initial });
  }
}

async function setUser(user, { initial = false } = {}) {
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
  if (user) loadProfile();
  if (changed || initial) await setSignedIn(Boolean(user), { initial });
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
  await setUser(null);
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
    field.values.map((value) => el("option", { value, text: VALUE_LABELS[value] ?? humanize(value) })));
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
    refreshConversations();
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
  let scheduled = false;
  // A rewritten chapter is long: rebuild its DOM at most once per frame, not per token.
  const render = () => {
    scheduled = false;
    if (state.chapter === chapter) renderRich(output, text);
  };
  let finished = false;
  try {
    const url = `/api/summary/chapters/${encodeURIComponent(chapter.id)}/${path}`;
    for await (const { event, data } of streamEvents(url, { body, signal: controller.signal, idleMs: 120000 })) {
      if (event === "token") {
        text += data.text ?? "";
        if (!scheduled) {
          scheduled = true;
          requestAnimationFrame(render);
        }
      } else if (event === "done") {
        render();
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
  initChat({ chapterId: () => state.chapter?.id ?? null });
}

wire();
updateChapterActions();
await Promise.all([loadSession({ initial: true }).catch(() => {}), loadChapters()]);
await restoreConversation();
document.body.dataset.ready = "true";
