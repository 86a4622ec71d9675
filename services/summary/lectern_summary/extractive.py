"""The offline fallback when no Gemini key is set: honest extractive texts built from the chapter
itself, labelled as such (model "extractive") and never stored in the cache."""

from __future__ import annotations

import re

from lectern_common.contracts import Chapter
from lectern_summary.textblocks import blocks

MODEL = "extractive"
MAX_POINTS = 8
MAX_SENTENCE_CHARS = 300
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_MARKUP = re.compile(r"^\s*(?:#+|[-*+]|\d+\.)\s+|[*_`]")


def _first_sentence(text: str) -> str:
    for block in blocks(text):
        if block.protected:
            continue
        prose = " ".join(_MARKUP.sub("", line) for line in block.text.splitlines()).strip()
        if prose and not prose.startswith(("|", "<", ">", "..")):
            sentence = _SENTENCE_END.split(prose, maxsplit=1)[0]
            return (
                sentence
                if len(sentence) <= MAX_SENTENCE_CHARS
                else (sentence[:MAX_SENTENCE_CHARS].rsplit(" ", 1)[0] + " ...")
            )
    return ""


def summary(chapter: Chapter) -> str:
    """The opening sentence of each section (up to MAX_POINTS), under a label saying so."""
    points = []
    for section in chapter.sections or []:
        if sentence := _first_sentence(section.text):
            points.append(
                f"- **{section.heading}**: {sentence}" if section.heading else f"- {sentence}"
            )
    if not points and (sentence := _first_sentence(chapter.text)):
        points.append(f"- {sentence}")
    label = (
        "_Extractive summary: no language model is configured, so these are the opening "
        "sentences of the chapter's sections._"
    )
    return "\n".join([label, "", *points[:MAX_POINTS]])


def personalized(chapter: Chapter) -> str:
    label = (
        "_Personalization needs the language model, which is not configured: this is the "
        "chapter as written._"
    )
    return f"{label}\n\n{chapter.text}"
