// The authors' insights page: the admin token typed in (kept in memory, never stored), then
// GET /api/admin/insights shown as tables, or its CSV downloaded. Text only, never innerHTML.
import { api, ApiError } from "./api.js";
import { el } from "./render.js";
import { $, messageOf, setBusy, show, showError } from "./ui.js";

const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");

function credential() {
  return { Authorization: `Bearer ${$("admin-token").value.trim()}` };
}

function days() {
  const value = Number.parseInt($("insights-days").value, 10);
  return Number.isInteger(value) && value >= 1 && value <= 365 ? value : 30;
}

function rows(body, items, cells, empty) {
  body.replaceChildren(...(items.length
    ? items.map((item) => el("tr", {}, cells(item).map((c) => el("td", { dir: "auto" }, c ?? ""))))
    : [el("tr", {}, el("td", { colspan: 6, class: "hint", text: empty }))]));
}

function render(data) {
  const { uncovered, down_rated: down, chapters, citations, period } = data;
  $("uncovered-summary").textContent =
    `${uncovered.questions} uncovered question(s) in ${uncovered.groups.length} group(s), last ${period.days} day(s).`;
  rows($("uncovered-rows"), uncovered.groups,
    (g) => [g.question, String(g.count), String(g.readers), g.query ?? "", when(g.last_asked)],
    "No uncovered question in this period.");
  rows($("down-rows"), down,
    (d) => [d.question, d.comment ?? "", d.answer, d.chapters.join(", "), d.reader, when(d.rated_at)],
    "No answer was rated down in this period.");
  rows($("chapter-rows"), chapters,
    (c) => [`${c.title ?? ""} (${c.chapter_id})`, String(c.questions)],
    "No answer cited the book in this period.");
  $("citation-share").textContent = citations.share === null
    ? "No citation was checked in this period."
    : `${(citations.share * 100).toFixed(1)} % unsupported (${citations.unsupported} of ${citations.checked} checked markers).`;
  show($("insights"), true);
}

async function load(event) {
  event.preventDefault();
  const form = $("insights-form");
  setBusy(form, true);
  showError($("insights-error"), null);
  $("insights-status").textContent = "Loading…";
  try {
    render(await api(`/api/admin/insights?days=${days()}`, { headers: credential() }));
    $("insights-status").textContent = "";
  } catch (error) {
    show($("insights"), false);
    $("insights-status").textContent = "";
    const forbidden = error instanceof ApiError && (error.status === 401 || error.status === 403);
    showError($("insights-error"), forbidden ? new Error("That is not the admin token.") : error);
  } finally {
    setBusy(form, false);
  }
}

async function downloadCsv() {
  showError($("insights-error"), null);
  try {
    const response = await fetch(`/api/admin/insights?days=${days()}&format=csv`, {
      headers: credential(), credentials: "same-origin", signal: AbortSignal.timeout(30000),
    });
    if (!response.ok) throw new ApiError({ status: response.status, code: `http_${response.status}`, message: "The CSV could not be made (is the token right?)." });
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: `lectern-insights-${days()}d.csv` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  } catch (error) {
    $("insights-error").textContent = messageOf(error);
    show($("insights-error"), true);
  }
}

$("insights-form").addEventListener("submit", load);
$("insights-csv").addEventListener("click", downloadCsv);
