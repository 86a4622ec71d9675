// The public API as the page uses it: JSON calls with a deadline, and SSE streams over POST.
// Same origin as the gateway, so the Better Auth session cookie (HttpOnly) travels by itself.
import { readEventStream } from "./sse.js";

const JSON_TIMEOUT_MS = 30000;

/** A failed call, with the server's error code and message when it sent an envelope. */
export class ApiError extends Error {
  constructor({ status, code, message, requestId = null, retryAfter = null }) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.requestId = requestId;
    this.retryAfter = retryAfter;
  }
}

/** Reads our error envelope, Better Auth's `{code, message}`, or falls back to the status. */
async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const detail = body?.error ?? body ?? {};
  const status = response.status;
  return new ApiError({
    status,
    code: typeof detail.code === "string" ? detail.code : `http_${status}`,
    message: describe(status, detail.message),
    requestId: detail.request_id ?? response.headers.get("x-request-id"),
    retryAfter: response.headers.get("retry-after"),
  });
}

function describe(status, message) {
  if (typeof message === "string" && message) return message;
  if (status === 429) return "Too many requests: wait a moment and try again.";
  if (status === 401) return "Please sign in first.";
  if (status >= 500) return "The server had a problem; try again shortly.";
  return `Request failed (HTTP ${status}).`;
}

/** Calls a JSON route; resolves to the parsed body (null when empty) or throws ApiError. */
export async function api(path, { method = "GET", body, headers = {}, timeoutMs = JSON_TIMEOUT_MS } = {}) {
  const init = {
    method,
    headers: { Accept: "application/json", ...headers },
    credentials: "same-origin",
    signal: AbortSignal.timeout(timeoutMs),
  };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

/** Requests (POST unless told) and yields the response's server-sent events. */
export async function* streamEvents(path, { method = "POST", body, headers = {}, signal, idleMs } = {}) {
  const init = {
    method,
    headers: { Accept: "text/event-stream", ...headers },
    credentials: "same-origin",
    signal,
  };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  const type = response.headers.get("content-type") ?? "";
  if (!type.includes("text/event-stream") || !response.body) {
    throw new ApiError({ status: response.status, code: "bad_stream", message: "The server did not send a stream." });
  }
  yield* readEventStream(response.body, { idleMs });
}
