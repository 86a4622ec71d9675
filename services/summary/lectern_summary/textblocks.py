"""Chapter text handling for prompts: protected blocks (fenced code, display formulas) swapped
for `[[CODE n]]` markers and restored verbatim afterwards, and splitting a chapter into parts
that fit the model's input budget."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lectern_common.contracts import Chapter

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_MARKER = re.compile(r"\[\[CODE (\d+)\]\]")
# The end of a text that may be the start of a marker still arriving in the next piece.
_PARTIAL_MARKER = re.compile(r"\[(?:\[(?:C(?:O(?:D(?:E(?: \d*\]?)?)?)?)?)?)?$")


@dataclass(frozen=True)
class Block:
    text: str
    protected: bool


def _protected_end(lines: list[str], start: int) -> int:
    """Index just past the fenced-code or $$-formula block opening at `start`, or `start` when
    that line opens none."""
    line = lines[start]
    if fence := _FENCE.match(line):
        mark = fence.group(1)
        for i in range(start + 1, len(lines)):
            if lines[i].strip().startswith(mark[0] * len(mark)) and not lines[i].strip().strip(
                mark[0]
            ):
                return i + 1
        return len(lines)
    stripped = line.strip()
    if stripped.startswith("$$"):
        if len(stripped) >= 4 and stripped.endswith("$$"):
            return start + 1
        for i in range(start + 1, len(lines)):
            if lines[i].strip().endswith("$$"):
                return i + 1
        return len(lines)
    return start


def blocks(text: str) -> list[Block]:
    """Paragraphs and protected blocks, in order; joining them with blank lines gives the text
    back up to blank-line runs."""
    lines = text.splitlines()
    out: list[Block] = []
    paragraph: list[str] = []

    def flush() -> None:
        if any(line.strip() for line in paragraph):
            out.append(Block("\n".join(paragraph).strip("\n"), False))
        paragraph.clear()

    i = 0
    while i < len(lines):
        end = _protected_end(lines, i)
        if end > i:
            flush()
            out.append(Block("\n".join(lines[i:end]), True))
            i = end
            continue
        if not lines[i].strip():
            flush()
        else:
            paragraph.append(lines[i])
        i += 1
    flush()
    return out


def protect(text: str) -> tuple[str, list[str]]:
    """The text with each protected block replaced by `[[CODE n]]`, and the blocks."""
    codes: list[str] = []
    pieces: list[str] = []
    for block in blocks(text):
        if block.protected:
            codes.append(block.text)
            pieces.append(f"[[CODE {len(codes)}]]")
        else:
            pieces.append(block.text)
    return "\n\n".join(pieces), codes


class Restorer:
    """Puts the original blocks back into model output that arrives in pieces. Blocks the model
    left out are appended at the end, so no code of the chapter is ever lost."""

    def __init__(self, codes: list[str]) -> None:
        self.codes = codes
        self.placed: set[int] = set()
        self.pending = ""

    def _substitute(self, text: str) -> str:
        def one(match: re.Match) -> str:
            n = int(match.group(1))
            if not 1 <= n <= len(self.codes):
                return ""
            self.placed.add(n)
            # On lines of their own, whatever the model did around the marker, so the fence
            # still opens and closes a block.
            return f"\n{self.codes[n - 1]}\n"

        return _MARKER.sub(one, text)

    def feed(self, piece: str) -> str:
        self.pending += piece
        partial = _PARTIAL_MARKER.search(self.pending)
        cut = partial.start() if partial else len(self.pending)
        ready, self.pending = self.pending[:cut], self.pending[cut:]
        return self._substitute(ready)

    def finish(self) -> str:
        tail = self._substitute(self.pending)
        self.pending = ""
        missing = [code for n, code in enumerate(self.codes, 1) if n not in self.placed]
        if missing:
            tail += "\n\n" + "\n\n".join(missing) + "\n"
        return tail


def _section_text(heading: str, text: str) -> str:
    return f"## {heading}\n\n{text}".strip() if heading else text.strip()


def _split_long(text: str, budget: int) -> list[str]:
    parts: list[str] = []
    current = ""
    for block in blocks(text):
        if current and len(current) + len(block.text) + 2 > budget:
            parts.append(current)
            current = ""
        current = f"{current}\n\n{block.text}" if current else block.text
    return [*parts, current] if current else parts


def parts(chapter: Chapter, budget: int) -> list[str]:
    """The chapter in parts of at most `budget` characters, cut between sections (or, inside an
    over-long section, between paragraphs; a single block larger than the budget stays whole)."""
    if len(chapter.text) <= budget or not chapter.sections:
        return _split_long(chapter.text, budget) if len(chapter.text) > budget else [chapter.text]
    out: list[str] = []
    current = ""
    for section in chapter.sections:
        text = _section_text(section.heading, section.text)
        pieces = _split_long(text, budget) if len(text) > budget else [text]
        for piece in pieces:
            if current and len(current) + len(piece) + 2 > budget:
                out.append(current)
                current = ""
            current = f"{current}\n\n{piece}" if current else piece
    return [*out, current] if current else out
