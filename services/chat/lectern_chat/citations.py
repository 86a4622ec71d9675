"""Checks each `[n]` of a finished answer against the passage of source n for the sentence it
closes: a lexical support score (how much of the sentence's content, weighted by how rare each
word is among the answer's sources, the passage contains), calibrated on the supported and
unsupported pairs of tests/unit/test_citation_checks.py. A marker that names no source is
reported as dangling."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from lectern_chat.extractive import STOPWORDS

# The same markers prompt.citations reads (`[2]`, `[1, 3]`).
_MARKER = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")
# Code is not a claim, and the reader page does not turn markers inside code into links.
_FENCED = re.compile(r"^```[^\n]*\n.*?(?:^```[^\n]*$|\Z)", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]+`")
# Where a sentence starts: after a sentence end (and the markers that follow it) or a newline.
_BOUNDARY = re.compile(r"(?:[.!?](?:\s*\[[\d,;\s]+\])*\s+)|\n")
_WORD = re.compile(r"[a-z][a-z0-9_+-]*[a-z0-9+]|\d+(?:\.\d+)?")
_SUFFIXES = ("ing", "ies", "es", "ed", "s")

# A sentence is supported when its score reaches this. Calibrated on the pairs of
# tests/unit/test_citation_checks.py: its unsupported pairs score 0.38 at most; 16 of its 18
# supported ones 0.43 or more (the two below are paraphrases, the lexical score's blind spot).
SUPPORT_THRESHOLD = 0.4
# A sentence this short says too little to check (e.g. "See [2]."): it counts as supported.
MIN_WORDS = 2


@dataclass(frozen=True)
class Check:
    n: int
    supported: bool
    score: float | None
    dangling: bool = False

    def as_dict(self) -> dict:
        return {
            "n": self.n,
            "supported": self.supported,
            "score": self.score,
            "dangling": self.dangling,
        }


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def terms(text: str) -> set[str]:
    """Content words, lightly stemmed; numbers are kept whatever their length."""
    return {
        _stem(w)
        for w in _WORD.findall(text.lower())
        if w[0].isdigit() or (len(w) > 2 and w not in STOPWORDS)
    }


def _blank(match: re.Match[str]) -> str:
    return re.sub(r"[^\n]", " ", match.group(0))


def claims(answer: str) -> list[tuple[int, str]]:
    """Each cited number in order of appearance (outside code), with the sentence it closes."""
    text = _INLINE_CODE.sub(_blank, _FENCED.sub(_blank, answer))
    found: list[tuple[int, str]] = []
    for marker in _MARKER.finditer(text):
        before = _MARKER.sub(" ", text[: marker.start()]).rstrip()
        starts = [m.end() for m in _BOUNDARY.finditer(before)]
        # A marker right after a sentence end closes that sentence.
        if starts and starts[-1] >= len(before):
            starts.pop()
        sentence = before[starts[-1] if starts else 0 :].strip()
        for number in re.split(r"\s*[,;]\s*", marker.group(1)):
            found.append((int(number), sentence))
    return found


def support(sentence_terms: set[str], passage_terms: set[str], weights: dict[str, float]) -> float:
    """The weighted share of the sentence's terms that the passage contains."""
    total = sum(weights[t] for t in sentence_terms)
    if not total:
        return 0.0
    return sum(weights[t] for t in sentence_terms & passage_terms) / total


def check(answer: str, passages: Sequence[str]) -> list[Check]:
    """One check per cited number of `answer`; `passages[n - 1]` is the text of source n."""
    found = claims(answer)
    if not found:
        return []
    passage_terms = [terms(p) for p in passages]
    weights: dict[str, float] = {}
    checks = []
    for n, sentence in found:
        if not 1 <= n <= len(passages):
            checks.append(Check(n=n, supported=False, score=None, dangling=True))
            continue
        sentence_terms = terms(sentence)
        if len(sentence_terms) < MIN_WORDS:
            checks.append(Check(n=n, supported=True, score=None))
            continue
        # A word found in every source says little about which one supports the sentence.
        for t in sentence_terms - weights.keys():
            weights[t] = math.log(1 + len(passages) / (1 + sum(t in p for p in passage_terms)))
        score = round(support(sentence_terms, passage_terms[n - 1], weights), 3)
        checks.append(Check(n=n, supported=score >= SUPPORT_THRESHOLD, score=score))
    return checks
