"""The offline answerer used when no Gemini key is configured: it quotes the sentences of the
retrieved passages that best match the question, each with its [n], under a visible note, and
says the book does not cover the question when nothing matches well enough. That last answer
(`not_covered`) is also the chat's answer, with or without a model, to a question the search
judged not covered."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from lectern_common.contracts import SearchResult

MODEL = "extractive"
NOTE = (
    "Offline mode: no language model is configured, so this answer quotes the passages "
    "of the book that best match your question."
)
# When a model is configured but cannot be used for this answer (pipeline.py).
FALLBACK_NOTES = {
    "rate_limited": "The language model is busy right now, so this answer quotes the passages "
    "of the book that best match your question.",
    "unavailable": "The language model is unavailable right now, so this answer quotes the "
    "passages of the book that best match your question.",
    "timeout": "The language model did not answer in time, so this answer quotes the passages "
    "of the book that best match your question.",
    "budget": "You have used today's allowance of language-model answers, so this answer "
    "quotes the passages of the book that best match your question.",
}
NOT_COVERED = (
    "The book does not seem to cover this: none of its passages matched your "
    "question closely enough, so I cannot answer it from the book."
)
NEAREST = "The nearest sections are:"
NEAREST_SECTIONS = 3

STOPWORDS = frozenset(
    """
a about above after again all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has
have having he her here hers him his how i if in into is it its itself just me more most my no
nor not now of off on once only or other our out over own same she should so some such than
that the their them then there these they this those through to too under until up very was we
were what when where which while who whom why will with would you your yours explain tell
describe show use using used work works please book chapter section
""".split()
)

_WORD = re.compile(r"[a-z0-9][a-z0-9_+.-]*[a-z0-9+]|[a-z0-9]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n{2,}|\n(?=[-*#>|]|\d+\.)")
_MARKUP = re.compile(r"^[#>*\-\s]+|[*_`]{1,3}")


@dataclass(frozen=True)
class Extract:
    text: str
    covered: bool


def content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in STOPWORDS}


def sentences(passage: str) -> list[str]:
    out = []
    for raw in _SENTENCE_END.split(passage):
        sentence = " ".join(_MARKUP.sub("", raw).split())
        if 20 <= len(sentence) <= 600:
            out.append(sentence)
    return out


def not_covered(results: Sequence[SearchResult]) -> str:
    """Says plainly that the book does not cover the question and names the nearest sections,
    each with its source number (a link in the reader), without quoting them as an answer."""
    nearest: dict[tuple[str, str], int] = {}
    for n, result in enumerate(results, start=1):
        nearest.setdefault((result.title, result.section), n)
    lines = [
        f"- {title}{f' > {section}' if section and section != title else ''} [{n}]"
        for (title, section), n in list(nearest.items())[:NEAREST_SECTIONS]
    ]
    return "\n".join([NOT_COVERED, "", NEAREST, *lines]) if lines else NOT_COVERED


def answer(
    question: str,
    results: Sequence[SearchResult],
    *,
    min_score: float,
    max_sentences: int,
    note: str = NOTE,
) -> Extract:
    """Pick up to `max_sentences` sentences sharing the most content words with the question,
    keep them in source order, and cite each with its source number, under `note`."""
    wanted = content_words(question)
    best_score = max((r.score for r in results), default=None)
    if not wanted or best_score is None or best_score < min_score:
        return Extract(f"{note}\n\n{not_covered(results)}", covered=False)
    ranked = []
    for n, result in enumerate(results, start=1):
        for position, sentence in enumerate(sentences(result.text)):
            overlap = len(wanted & content_words(sentence))
            if overlap:
                ranked.append((-overlap, n, position, sentence))
    if not ranked:
        return Extract(f"{note}\n\n{not_covered(results)}", covered=False)
    chosen = sorted(sorted(ranked)[:max_sentences], key=lambda item: (item[1], item[2]))
    quoted = "\n".join(f"- {sentence} [{n}]" for _, n, _, sentence in chosen)
    return Extract(f"{note}\n\n{quoted}", covered=True)


def pieces(text: str, words_per_piece: int = 4) -> list[str]:
    """Split the answer into small pieces streamed as tokens, like a model would send them."""
    words = re.findall(r"\S+\s*", text)
    return [
        "".join(words[i : i + words_per_piece]) for i in range(0, len(words), words_per_piece)
    ] or [text]
