// Lectern's status page: fetches /status/api every 2 s and redraws the cards (text only: no
// HTML from the figures is ever parsed).
"use strict";

const REFRESH_MS = 2000;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

const num = (v, digits = 2) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
const ms = (v) => (v === null || v === undefined ? "–" : `${num(v, 1)} ms`);
const pct = (v) => (v === null || v === undefined ? "–" : `${num(v * 100, 1)} %`);

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

function clock(unix) {
  return unix ? new Date(unix * 1000).toISOString().slice(11, 19) : "–";
}

function details(part) {
  const rows = [];
  const add = (term, value, cls) => rows.push(el("dt", {}, term), el("dd", cls ? { class: cls } : {}, value));
  if (part.kind === "service") {
    add("uptime", `${duration(part.uptime_s)} (since ${clock(part.started_at)})`);
    add("requests", part.requests_per_s === undefined ? "–" : `${num(part.requests_per_s)} /s`);
    add("p95", ms(part.p95_ms));
    add("5xx", pct(part.error_share));
    const g = part.gauges || {};
    if (g.lectern_chat_open_streams !== undefined) {
      add("open streams", `${g.lectern_chat_open_streams} (answers running ${g.lectern_chat_answers_in_progress ?? 0})`);
    }
    if (part.model_calls_per_min !== undefined && (part.name === "chat" || part.name === "summary" || part.model_calls_per_min > 0)) {
      add("model", `${num(part.model_calls_per_min, 1)} calls/min, ${num(part.model_failures_per_min, 1)} failures/min`);
    }
    if (part.cache_hit_rate !== undefined && part.name === "summary") add("cache hits", pct(part.cache_hit_rate));
    if (g.pool_max !== undefined) add("db pool", `${g.pool_in_use ?? 0}/${g.pool_max} in use, ${g.pool_waiting ?? 0} waiting`);
  }
  add("health", part.state === "down" ? "no answer" : ms(part.health_ms));
  for (const [name, dep] of Object.entries(part.dependencies || {})) {
    add(name, dep.up ? ms(dep.latency_ms) : "down", dep.up ? "" : "dep-down");
  }
  add("checked", clock(part.checked_at));
  return el("dl", {}, ...rows);
}

function card(name, state, label, body) {
  return el("article", { class: "card", "data-part": name, "data-state": state },
    el("h3", {}, name, el("span", { class: "pill" }, label)), body);
}

const LABELS = { up: "up", not_ready: "not ready", down: "down", unknown: "…" };

function draw(data) {
  const parts = data.parts.map((p) => card(p.name, p.state, LABELS[p.state] || p.state, details(p)));
  document.getElementById("parts").replaceChildren(...parts);
  const stores = data.stores.map((s) => {
    const body = el("dl", {}, el("dt", {}, "check"), el("dd", {}, s.up ? ms(s.latency_ms) : "failing"),
      el("dt", {}, "seen by"), el("dd", {}, (s.checked_by || []).join(", ")));
    return card(s.name, s.up ? "up" : "down", s.up ? "up" : "down", body);
  });
  document.getElementById("stores").replaceChildren(...stores);
  const errors = data.last_errors.map((e) => el("tr", {}, el("td", {}, clock(e.at)), el("td", {}, e.service),
    el("td", {}, e.what), el("td", {}, e.route), el("td", {}, String(e.n))));
  document.querySelector("#errors tbody").replaceChildren(...(errors.length ? errors : [el("tr", {}, el("td", { colspan: "5" }, "none"))]));
  const bad = data.parts.filter((p) => p.state !== "up").map((p) => `${p.name} ${LABELS[p.state] || p.state}`)
    .concat(data.stores.filter((s) => !s.up).map((s) => `${s.name} down`));
  const summary = document.getElementById("summary");
  summary.textContent = (bad.length ? `Problems: ${bad.join(", ")}` : "All parts up") + ` · ${clock(data.generated_at)} UTC`;
  summary.className = bad.length ? "bad" : "";
  document.body.dataset.updated = String(data.generated_at);
}

async function refresh() {
  try {
    const response = await fetch("/status/api", { cache: "no-store", signal: AbortSignal.timeout(REFRESH_MS * 2) });
    if (!response.ok) throw new Error(`status ${response.status}`);
    draw(await response.json());
  } catch (error) {
    const summary = document.getElementById("summary");
    summary.textContent = `The status service did not answer (${error.message}); retrying…`;
    summary.className = "bad";
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();
