"""Second-stage rescoring of the fused hybrid candidates: a linear score over cheap features
of each of the top DEPTH fused chunks (its fusion score, its best passage's dense cosine, its
BM25 score relative to the best, and the share of the query's content words its text or
headings contain), so that a chunk that answers all of a loosely worded question beats one
that matches a single word of it many times. Weights fitted on the dev and tuning questions
only (docs/RETRIEVAL.md, "Quality")."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# Fused candidates rescored (the legs bring 20 each; past 30 the gold passage was never found).
DEPTH = 30
# Weights of the fusion score (RRF, k 60: at most ~0.033), the dense cosine, the BM25 score
# over the query's best, and the query-word coverage, fitted by a grid on recall@5 + MRR@10
# over dev + tune: a plateau, dense 3-4, lexical 1.6, coverage 0.8-1.6 scored the same.
W_FUSED = 60.0
W_DENSE = 3.0
W_LEXICAL = 1.6
W_COVERAGE = 1.0

_WORD = re.compile(r"[a-z0-9_]+")
# Words that say how a question is asked, not what it is about.
_STOP = frozenset(
    """a an the and or but if of to in on at by for with from as is are was were be been being
    it its this that these those i you we they he she my your our their me us do does did doing
    done how what why when where which who whom can could should would will shall may might
    must not no so than then there here into out up down over under about again just only also
    very too more most some any each all both few such own same other have has had having get
    got make made want need use using used way thing things""".split()
)
# Longest first: a crude stemmer, enough for "plugins"/"plugin", "spawning"/"spawn".
_SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ied", "es", "ed", "ly", "s")


# A passage's vocabulary repeats across searches: caching the stems keeps a rescoring of 30
# chunks near a millisecond.
@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> frozenset[str]:
    """The distinct stemmed words of `text` that carry meaning (lowercased, stop words out)."""
    return frozenset(_stem(w) for w in _WORD.findall(text.lower()) if len(w) > 1 and w not in _STOP)


@dataclass(frozen=True)
class Candidate:
    chunk_id: str
    fused: float  # its reciprocal-rank-fusion score
    dense: float | None  # its best passage's cosine, None when the dense leg did not rank it
    lexical: float | None  # its BM25 score, None when the lexical leg did not rank it
    text: str  # body, section and document title
    heading: str


# The same chunks come back search after search: their words are worked out once (a
# chunk's ~1,200 characters cost ~0.1 ms to split and stem, 30 of them per search were the
# largest share of a search's CPU). Keyed by the text itself, so an edited chunk is new.
@lru_cache(maxsize=16384)
def chunk_words(text: str, heading: str) -> frozenset[str]:
    return content_words(text) | content_words(heading)


def coverage(query_words: frozenset[str], candidate: Candidate) -> float:
    """The share of the query's content words found in the chunk's text or headings."""
    if not query_words:
        return 0.0
    found = chunk_words(candidate.text, candidate.heading)
    return len(query_words & found) / len(query_words)


def rescore(
    query: str,
    candidates: list[Candidate],
    dense_leg: list[tuple[str, float]],
    lexical_leg: list[tuple[str, float]],
) -> list[tuple[str, float]]:
    """The candidates reordered by the fitted linear score, best first. A chunk one leg did
    not rank gets that leg's floor: the lowest cosine the dense leg returned, BM25 0."""
    words = content_words(query)
    dense_floor = min((s for _, s in dense_leg), default=0.0)
    best_lexical = max((s for _, s in lexical_leg), default=0.0)
    scored = []
    for c in candidates:
        dense = c.dense if c.dense is not None else dense_floor
        lexical = (c.lexical or 0.0) / best_lexical if best_lexical > 0 else 0.0
        score = (
            W_FUSED * c.fused
            + W_DENSE * dense
            + W_LEXICAL * lexical
            + W_COVERAGE * coverage(words, c)
        )
        scored.append((c.chunk_id, score))
    return sorted(scored, key=lambda item: -item[1])
