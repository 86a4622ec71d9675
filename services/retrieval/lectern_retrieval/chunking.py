"""Splits a parsed document into heading-aware chunks within a size budget, never cutting a
code block in half unless it alone is far over budget (then at line boundaries, re-fenced)."""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass

from lectern_retrieval.parsing import ParsedDoc, Section

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})(.*)$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`*(\[])")


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    ord: int
    heading_path: tuple[str, ...]
    section: str
    text: str


def chunk_id(*, source: str, source_path: str, heading_path: tuple[str, ...], text: str) -> str:
    """Deterministic id (also the Qdrant point id): a UUID made from a content hash."""
    key = "\x1f".join((source, source_path, "\x1e".join(heading_path), text))
    return str(uuid.UUID(bytes=hashlib.sha256(key.encode()).digest()[:16]))


def _blocks(text: str) -> list[tuple[str, bool]]:
    """Paragraphs and fenced code blocks as (text, is_code); a fence is one block."""
    blocks: list[tuple[str, bool]] = []
    current: list[str] = []
    fence: str | None = None
    for line in text.split("\n"):
        if fence is None and (m := _FENCE.match(line)):
            if current:
                blocks.append(("\n".join(current), False))
            current, fence = [line], m.group(1)[0] * len(m.group(1))
        elif fence is not None:
            current.append(line)
            if line.strip().startswith(fence) and line.strip().strip(fence[0]) == "":
                blocks.append(("\n".join(current), True))
                current, fence = [], None
        elif not line.strip():
            if current:
                blocks.append(("\n".join(current), False))
            current = []
        else:
            current.append(line)
    if current:
        blocks.append(("\n".join(current), fence is not None))
    return blocks


def _split_code(block: str, budget: int) -> list[str]:
    lines = block.split("\n")
    opener, body = lines[0], lines[1:]
    closer = body.pop() if body and _FENCE.match(body[-1]) else opener.strip()[:3]
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for line in body:
        if current and size + len(line) + 1 > budget:
            pieces.append("\n".join([opener, *current, closer]))
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        pieces.append("\n".join([opener, *current, closer]))
    return pieces


def _split_prose(block: str, budget: int) -> list[str]:
    pieces, current = [], ""
    for sentence in _SENTENCE_END.split(block):
        while len(sentence) > budget:  # one enormous "sentence": cut at a space
            cut = sentence.rfind(" ", 0, budget)
            cut = cut if cut > budget // 2 else budget
            head, sentence = sentence[:cut], sentence[cut:].lstrip()
            if current:
                pieces.append(current)
                current = ""
            pieces.append(head)
        if current and len(current) + len(sentence) + 1 > budget:
            pieces.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}" if current else sentence
    if current:
        pieces.append(current)
    return pieces


def _units(text: str, budget: int) -> list[str]:
    """Blocks no bigger than the budget (code may go up to 2x before it is split)."""
    units: list[str] = []
    for block, is_code in _blocks(text):
        if is_code:
            units.extend([block] if len(block) <= 2 * budget else _split_code(block, budget))
        else:
            units.extend([block] if len(block) <= budget else _split_prose(block, budget))
    return units


def split_section(text: str, budget: int) -> list[str]:
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for unit in _units(text, budget):
        if current and size + len(unit) + 2 > budget:
            pieces.append("\n\n".join(current))
            current, size = [], 0
        current.append(unit)
        size += len(unit) + 2
    if current:
        tail = "\n\n".join(current)
        # A short tail reads better joined to the piece before it.
        if pieces and len(tail) < budget // 4 and len(pieces[-1]) + len(tail) < budget * 1.25:
            pieces[-1] = f"{pieces[-1]}\n\n{tail}"
        else:
            pieces.append(tail)
    return pieces


def chunk_document(doc: ParsedDoc, *, source: str, source_path: str, budget: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    seen: set[str] = set()
    for section in doc.sections:
        for piece in split_section(section.text, budget):
            cid = chunk_id(
                source=source, source_path=source_path, heading_path=section.path, text=piece
            )
            if cid in seen:  # the same text twice in one section adds nothing to search
                continue
            seen.add(cid)
            chunks.append(Chunk(cid, len(chunks), section.path, _section_name(doc, section), piece))
    return chunks


def _section_name(doc: ParsedDoc, section: Section) -> str:
    return section.path[-1] if section.path else doc.title


_ROLE = re.compile(r":[\w:+-]+:`([^`<]*?)\s*(?:<[^`>]*>)?`")
_RST_LINK = re.compile(r"`([^`<]+?)\s*<[^`>]+>`_{1,2}")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_URL = re.compile(r"https?://\S+")


def plain_text(text: str) -> str:
    """Text without link targets, role names and URLs: they spend the embedding model's short
    token budget on nothing a reader would ask about."""
    text = _ROLE.sub(r"\1", text)
    text = _RST_LINK.sub(r"\1", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _URL.sub("", text)
    return re.sub(r"``|\*\*", "", text)


def embedding_parts(*, title: str, heading_path: tuple[str, ...], text: str) -> tuple[str, str]:
    """What gets embedded: (the title and heading path, the chunk's plain text). Every passage
    of the chunk starts with the first, so a passage deep in a section still says what it is
    about."""
    path = [h for h in heading_path if h != title]
    return " > ".join([title, *path]), plain_text(text)
