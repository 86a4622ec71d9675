"""Turns Markdown/MDX and reStructuredText files into a title plus heading-delimited sections.

Body text is kept as written (inline markup included) so snippets and citations quote the
source; only what a reader never sees is dropped (front matter, MDX imports and JSX tags,
comments, Sphinx boilerplate such as `contents`, `toctree` and `redirect-from`).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import PurePosixPath

import yaml

MARKDOWN_SUFFIXES = (".md", ".mdx", ".markdown")
RST_SUFFIXES = (".rst",)
SUPPORTED_SUFFIXES = MARKDOWN_SUFFIXES + RST_SUFFIXES


class ParseError(ValueError):
    """A file that cannot be read as a document (the upload is refused)."""


@dataclass(frozen=True)
class Section:
    path: tuple[str, ...]  # heading texts from the top of the file down to this section
    text: str


@dataclass(frozen=True)
class ParsedDoc:
    title: str
    sections: list[Section]
    slug: str | None = None

    @property
    def text(self) -> str:
        """The whole cleaned document, headings included, as one string."""
        parts = []
        for section in self.sections:
            if section.path:
                parts.append("#" * min(len(section.path), 6) + " " + section.path[-1])
            if section.text:
                parts.append(section.text)
        return "\n\n".join(parts)


def parse_document(path: str, text: str) -> ParsedDoc:
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in MARKDOWN_SUFFIXES:
        return parse_markdown(text, fallback_title=_title_from_path(path))
    if suffix in RST_SUFFIXES:
        return parse_rst(text, fallback_title=_title_from_path(path))
    raise ParseError(f"unsupported file type: {suffix or 'none'}")


def _title_from_path(path: str) -> str:
    stem = PurePosixPath(path).stem
    if stem.lower() in ("index", "readme") and PurePosixPath(path).parent.name:
        stem = PurePosixPath(path).parent.name
    return re.sub(r"[-_]+", " ", re.sub(r"^\d+[-_]", "", stem)).strip().capitalize() or stem


_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_TAG = re.compile(r"</?[A-Za-z][\w.:-]*(?:\s[^<>]*)?/?>")
_HEADING_ID = re.compile(r"\s*\{#[\w-]+\}\s*$")
_RST_ROLE = re.compile(r":[\w:+-]+:`([^`<]*?)\s*(?:<[^`>]*>)?`")


def clean_heading(text: str) -> str:
    """A heading as a reader sees it: no inline markup, links reduced to their text."""
    text = _HEADING_ID.sub("", text)
    text = _RST_ROLE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _TAG.sub("", text)
    text = re.sub(r"(\*\*|__|`+)", "", text)
    text = re.sub(r"(?<!\w)[*_](\S.*?\S|\S)[*_](?!\w)", r"\1", text)
    return re.sub(r"\s+", " ", text).strip()


# ---- Markdown / MDX -------------------------------------------------------------------------

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)(?:\s+#+)?\s*$")
_MDX_ESM = re.compile(
    r"^(import\s.+|import\s*['\"].+|export\s+(?:const|default|function|let)\b.*)$"
)
_JSX_LINE = re.compile(r"^\s*(?:</?[A-Z][\w.]*(?:\s[^<>]*)?/?>\s*)+$")
_JSX_OPEN = re.compile(r"^\s*<[A-Za-z][\w.]*(?:\s[^<>]*)?$")  # a tag whose attributes continue
_ADMONITION = re.compile(r"^\s*:::\s*(\w+)?\s*(.*)$")


def _front_matter(text: str) -> tuple[dict, str]:
    if not text.startswith("---"):
        return {}, text
    match = re.match(r"^---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|$)", text, re.DOTALL)
    if not match:
        return {}, text
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise ParseError("front matter is not valid YAML") from exc
    if not isinstance(meta, dict):
        raise ParseError("front matter is not a mapping")
    return meta, text[match.end() :]


def _strip_mdx(lines: list[str]) -> list[str]:
    """Drop ESM imports/exports, JSX tag lines and comments outside code fences."""
    out: list[str] = []
    fence: str | None = None
    in_comment = in_tag = False
    for line in lines:
        if fence is None and (m := _FENCE.match(line)):
            fence = m.group(1)[0] * len(m.group(1))
            out.append(line)
            continue
        if fence is not None:
            if line.strip().startswith(fence) and line.strip().strip(fence[0]) == "":
                fence = None
            out.append(line)
            continue
        if in_tag:
            in_tag = not line.rstrip().endswith(">")
            continue
        if in_comment:
            if "-->" in line or "*/}" in line:
                in_comment = False
                line = re.split(r"-->|\*/\}", line, maxsplit=1)[1]
            else:
                continue
        line = re.sub(r"<!--.*?-->|\{/\*.*?\*/\}", "", line)
        if "<!--" in line or "{/*" in line:
            line, in_comment = re.split(r"<!--|\{/\*", line, maxsplit=1)[0], True
        if _MDX_ESM.match(line) or _JSX_LINE.match(line):
            continue
        if _JSX_OPEN.match(line):
            in_tag = True
            continue
        if m := _ADMONITION.match(line):
            kind, label = m.group(1), m.group(2).strip()
            if kind:
                out.append(f"{kind.capitalize()}: {label}" if label else f"{kind.capitalize()}:")
            continue
        out.append(line)
    return out


def parse_markdown(text: str, *, fallback_title: str) -> ParsedDoc:
    meta, body = _front_matter(text.replace("\r\n", "\n"))
    lines = _strip_mdx(body.split("\n"))
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    current: list[str] = []
    first_h1: str | None = None
    fence: str | None = None

    def flush() -> None:
        body_text = textwrap.dedent("\n".join(current)).strip("\n")
        heading_path = tuple(h for _, h in path)
        if body_text.strip() or heading_path:
            sections.append(Section(heading_path, body_text.strip()))
        current.clear()

    for line in lines:
        if fence is None and (m := _FENCE.match(line)):
            fence = m.group(1)[0] * len(m.group(1))
        elif fence is not None:
            if line.strip().startswith(fence) and line.strip().strip(fence[0]) == "":
                fence = None
        elif m := _ATX.match(line):
            flush()
            level, heading = len(m.group(1)), clean_heading(m.group(2))
            if level == 1 and first_h1 is None:
                first_h1 = heading
            path = [(lvl, h) for lvl, h in path if lvl < level] + [(level, heading)]
            continue
        current.append(line)
    flush()
    title = str(meta.get("title") or first_h1 or meta.get("sidebar_label") or fallback_title)
    slug = meta.get("slug")
    return ParsedDoc(
        title=clean_heading(title),
        sections=[s for s in sections if s.text],
        slug=str(slug) if slug else None,
    )


# ---- reStructuredText (Sphinx) --------------------------------------------------------------

_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+<>:._!$%&(),/;?@\[\\\]{|}])\1{2,}\s*$")
_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+(?:\|[^|]+\|\s+)?([\w:.-]+)::(?:\s+(.*))?$")
_EXPLICIT = re.compile(r"^(\s*)\.\.(?:\s|$)")
_OPTION = re.compile(r"^\s*:[\w-]+:(?:\s.*)?$")
CODE_DIRECTIVES = {"code-block", "code", "sourcecode", "code-tab"}
DROPPED_DIRECTIVES = {
    "contents",
    "toctree",
    "redirect-from",
    "meta",
    "raw",
    "image",
    "figure",
    "include",
    "literalinclude",
    "index",
    "highlight",
    "tabularcolumns",
    "sectionauthor",
    "moduleauthor",
    "codeauthor",
    "spelling:word-list",
    "todo",
    "graphviz",
    "video",
    "youtube",
    "iframe",
    "autosummary",
    "automodule",
    "autoclass",
    "doxygenfile",
    "doxygenclass",
}
ADMONITIONS = {
    "note",
    "warning",
    "tip",
    "important",
    "caution",
    "attention",
    "danger",
    "error",
    "hint",
    "seealso",
    "admonition",
    "versionadded",
    "versionchanged",
    "deprecated",
}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """Index after the indented block that starts at `start` (blank lines included)."""
    end = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return end


def _dedent_block(lines: list[str]) -> list[str]:
    return textwrap.dedent("\n".join(lines)).split("\n") if lines else []


def _rst_body(lines: list[str]) -> list[str]:
    """Rewrite directive blocks, comments and literal blocks of a section body."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if m := _DIRECTIVE.match(line):
            indent, name, arg = len(m.group(1)), m.group(2).lower(), (m.group(3) or "").strip()
            end = _block_end(lines, i + 1, indent)
            content = lines[i + 1 : end]
            while content and _OPTION.match(content[0]):
                content = content[1:]
            content = _dedent_block(content)
            out.extend(_directive(name, arg, content))
            i = end
            continue
        if _EXPLICIT.match(line):  # a comment or a link target: never shown
            i = _block_end(lines, i + 1, _indent(line))
            continue
        if line.rstrip().endswith("::") and i + 1 < len(lines):
            end = _block_end(lines, i + 1, _indent(line))
            block = _dedent_block(lines[i + 1 : end])
            if any(b.strip() for b in block):
                stripped = line.rstrip()[:-2].rstrip()
                if stripped:
                    out.append(stripped + ":")
                out.extend(["", "```", *block, "```", ""])
                i = end
                continue
        out.append(line)
        i += 1
    return out


def _directive(name: str, arg: str, content: list[str]) -> list[str]:
    if name in DROPPED_DIRECTIVES:
        return []
    if name in CODE_DIRECTIVES:
        lang = arg.split()[0] if arg else ""
        code = "\n".join(content).strip("\n")
        return ["", f"```{lang}", *code.split("\n"), "```", ""] if code else []
    body = _rst_body(content)
    if name in ADMONITIONS:
        label = arg if name in ("admonition",) else name.capitalize()
        lead = f"{label}: {arg}" if arg and name not in ("admonition",) else f"{label}:"
        return ["", lead, *body, ""]
    # tabs, tab, group-tab, only, container, topic, tables...: keep what the reader sees.
    return [
        "",
        *([arg] if arg and name not in ("only", "container", "list-table") else []),
        *body,
        "",
    ]


def _rst_titles(lines: list[str]) -> list[tuple[int, int, str, int]]:
    """(start line, line after the title, title text, level) for every section title."""
    styles: list[tuple[str, bool]] = []
    titles = []
    i = 0
    while i < len(lines) - 1:
        line, nxt = lines[i], lines[i + 1]
        over = _ADORNMENT.match(line)
        if (
            over
            and i + 2 < len(lines)
            and nxt.strip()
            and _ADORNMENT.match(lines[i + 2])
            and lines[i + 2].strip()[0] == line.strip()[0]
        ):
            style, text, end = (line.strip()[0], True), nxt.strip(), i + 3
        elif (
            line.strip()
            and not line[0].isspace()
            and _ADORNMENT.match(nxt)
            and len(nxt.strip()) >= min(len(line.strip()), 3)
            and not _EXPLICIT.match(line)
            and (i == 0 or not lines[i - 1].strip())
        ):
            style, text, end = (nxt.strip()[0], False), line.strip(), i + 2
        else:
            i += 1
            continue
        if style not in styles:
            styles.append(style)
        titles.append((i, end, text, styles.index(style) + 1))
        i = end
    return titles


def parse_rst(text: str, *, fallback_title: str) -> ParsedDoc:
    lines = text.replace("\r\n", "\n").replace("\t", "    ").split("\n")
    titles = _rst_titles(lines)
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    bounds = [(0, 0, None, 0), *titles]
    for n, (_, body_start, heading, level) in enumerate(bounds):
        if heading is not None:
            path = [(lvl, h) for lvl, h in path if lvl < level] + [(level, clean_heading(heading))]
        body_end = titles[n][0] if n < len(titles) else len(lines)
        body = "\n".join(_rst_body(lines[body_start:body_end]))
        body = re.sub(r"\n{3,}", "\n\n", body).strip()
        if body:
            sections.append(Section(tuple(h for _, h in path), body))
    title = titles[0][2] if titles else fallback_title
    return ParsedDoc(title=clean_heading(title), sections=sections)
