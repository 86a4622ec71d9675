// Small helpers the page's modules share: element lookup, visibility, and readable messages.
import { ApiError } from "./api.js";

export const $ = (id) => document.getElementById(id);

export function show(node, visible) {
  node.hidden = !visible;
}

/** A sentence for a reader from any failure (API error, timeout, network). */
export function messageOf(error) {
  if (error instanceof ApiError) {
    const wait = error.retryAfter ? ` (retry in ${error.retryAfter} s)` : "";
    return `${error.message}${wait}`;
  }
  if (error?.name === "TimeoutError" || error?.name === "StreamTimeout") {
    return "The server took too long to answer.";
  }
  if (error instanceof TypeError) return "Could not reach the server.";
  return error?.message || "Something went wrong.";
}

export function showError(node, error) {
  node.textContent = error ? messageOf(error) : "";
  show(node, Boolean(error));
}

export function setBusy(form, busy) {
  for (const button of form.querySelectorAll("button")) button.disabled = busy;
  form.setAttribute("aria-busy", String(busy));
}

function timingText(timings) {
  const names = { retrieval: "retrieval", first_token: "first token", total: "total" };
  return Object.entries(names)
    .filter(([key]) => typeof timings?.[key] === "number")
    .map(([key, name]) => `${name} ${Math.round(timings[key])} ms`);
}

/** "Answered · model … · first token … ms · total … ms" from a `done` event or a stored message. */
export function doneLine(label, data) {
  return [
    label,
    data?.model && `model ${data.model}`,
    data?.cached === true && "from cache",
    data?.finish_reason && data.finish_reason !== "stop" && `finish: ${data.finish_reason}`,
    ...timingText(data?.timings_ms),
  ].filter(Boolean).join(" · ");
}
