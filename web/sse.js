// Server-sent events over fetch (EventSource cannot POST): a WHATWG-style line parser and a
// reader that yields one {event, data, id} object per dispatched event.

/** Turns decoded text chunks into events; chunks may split lines and CRLF pairs anywhere. */
export class EventStreamParser {
  #buffer = "";
  #data = [];
  #event = "";
  lastEventId = "";

  /** Feeds one chunk of text; returns the events it completed. */
  push(text) {
    this.#buffer += text;
    const events = [];
    let start = 0;
    for (let i = 0; i < this.#buffer.length; i += 1) {
      const ch = this.#buffer[i];
      if (ch !== "\n" && ch !== "\r") continue;
      // A trailing CR may be the first half of CRLF: wait for the next chunk to decide.
      if (ch === "\r" && i + 1 === this.#buffer.length) break;
      const line = this.#buffer.slice(start, i);
      if (ch === "\r" && this.#buffer[i + 1] === "\n") i += 1;
      start = i + 1;
      const event = this.#line(line);
      if (event) events.push(event);
    }
    this.#buffer = this.#buffer.slice(start);
    return events;
  }

  #line(line) {
    if (line === "") return this.#dispatch();
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.#data.push(value);
    else if (field === "event") this.#event = value;
    else if (field === "id" && !value.includes("\0")) this.lastEventId = value;
    return null;
  }

  #dispatch() {
    const event = this.#data.length
      ? { event: this.#event || "message", data: this.#data.join("\n"), id: this.lastEventId }
      : null;
    this.#data = [];
    this.#event = "";
    return event;
  }
}

export class StreamTimeout extends Error {
  constructor(idleMs) {
    super(`no data from the server for ${Math.round(idleMs / 1000)} s`);
    this.name = "StreamTimeout";
  }
}

/** Reads with a deadline, so a stalled connection cannot keep the page waiting forever. */
async function readWithin(reader, idleMs) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new StreamTimeout(idleMs)), idleMs);
  });
  try {
    return await Promise.race([reader.read(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Yields {event, data, id} from a response body; `data` is parsed JSON (or the raw text). */
export async function* readEventStream(body, { idleMs = 60000 } = {}) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new EventStreamParser();
  try {
    for (;;) {
      const { value, done } = await readWithin(reader, idleMs);
      if (done) return;
      for (const event of parser.push(value)) {
        yield { ...event, data: parseData(event.data) };
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

function parseData(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
