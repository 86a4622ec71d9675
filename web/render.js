// Model text to DOM nodes, never through innerHTML: paragraphs, headings, lists, code, bold, and
// [n] citations turned into links to the numbered sources (marked when their check says the
// source does not support the sentence, or that no source has that number).

/** Builds an element with properties and children (strings become text nodes). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/** Only http(s) links (absolute or relative to the page); anything else (javascript:, data:) is dropped. */
export function safeHref(url) {
  if (typeof url !== "string" || !url) return null;
  try {
    const parsed = new URL(url, window.location.href);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

/** A link opening outside the page, or plain text when the address is not safe. */
export function outLink(url, text, props = {}) {
  const href = safeHref(url);
  if (!href) return el("span", props, text);
  return el("a", { href, target: "_blank", rel: "noopener noreferrer", ...props }, text);
}

const INLINE = /(\[\d{1,2}(?:\s*[,;]\s*\d{1,2})*\])|(`[^`\n]+`)|(\*\*[^*\n]+\*\*)/g;

function citation(n, sources, check) {
  const source = sources?.get(n);
  if (!source) {
    if (!check?.dangling) return `[${n}]`;
    return el("span", { class: "cite dangling", "data-n": String(n), title: "No source has this number" }, `[${n}]`);
  }
  const title = [source.title, source.section].filter(Boolean).join(" — ");
  const unsupported = check && !check.supported;
  return outLink(source.url, `[${n}]`, {
    class: unsupported ? "cite unsupported" : "cite",
    title: unsupported ? `${title} — this source does not seem to support the sentence` : title,
    "data-n": String(n),
    "data-check": check ? (unsupported ? "unsupported" : "supported") : null,
  });
}

/** Inline pieces of one paragraph: text, `code`, **bold** and [n] / [1, 2] citations. */
function inline(text, sources, checkOf) {
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    if (match.index > last) nodes.push(text.slice(last, match.index));
    const [whole, cite, code, bold] = match;
    if (cite) {
      const numbers = whole.slice(1, -1).split(/[,;]/).map((s) => Number.parseInt(s, 10));
      numbers.forEach((n) => nodes.push(citation(n, sources, checkOf(n))));
    } else if (code) {
      nodes.push(el("code", { text: code.slice(1, -1) }));
    } else if (bold) {
      nodes.push(el("strong", { text: bold.slice(2, -2) }));
    }
    last = match.index + whole.length;
  }
  if (last < text.length) nodes.push(text.slice(last));
  return nodes;
}

const BULLET = /^\s*[-*]\s+/;
const NUMBERED = /^\s*\d+[.)]\s+/;
const HEADING = /^(#{1,6})\s+(.*)$/;

function block(paragraph, sources, checkOf) {
  const lines = paragraph.split("\n");
  const heading = lines.length === 1 && HEADING.exec(lines[0]);
  if (heading) return el(heading[1].length <= 2 ? "h3" : "h4", {}, inline(heading[2], sources, checkOf));
  for (const [pattern, tag] of [[BULLET, "ul"], [NUMBERED, "ol"]]) {
    if (lines.every((line) => pattern.test(line))) {
      return el(tag, {}, lines.map((line) => el("li", {}, inline(line.replace(pattern, ""), sources, checkOf))));
    }
  }
  return el("p", {}, inline(paragraph, sources, checkOf));
}

/** The check of each marker in turn: the k-th [n] of the text gets the k-th check of n. */
function checkCounter(checks) {
  const seen = new Map();
  return (n) => {
    const k = seen.get(n) ?? 0;
    seen.set(n, k + 1);
    return (checks ?? []).filter((c) => c.n === n)[k];
  };
}

/**
 * Replaces `container`'s content with `text` rendered safely. `sources` maps n to a source
 * ({url, title, section}); `checks` are the answer's citation checks ({n, supported, dangling},
 * in the order of the markers); an unclosed code fence (mid-stream) is shown as code so far.
 */
export function renderRich(container, text, sources = null, checks = null) {
  const checkOf = checkCounter(checks);
  const parts = text.split(/^```[^\n]*$/m);
  const blocks = [];
  parts.forEach((part, index) => {
    if (index % 2 === 1) {
      blocks.push(el("pre", {}, el("code", { text: part.replace(/^\n|\n$/g, "") })));
      return;
    }
    for (const paragraph of part.split(/\n\s*\n/)) {
      if (paragraph.trim()) blocks.push(block(paragraph.trim(), sources, checkOf));
    }
  });
  container.replaceChildren(...blocks);
}
