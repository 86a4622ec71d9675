"""The coverage verdict: whether the book covers a question, from the query's specific terms
(identifiers, acronyms, names with digits or inner capitals) that the book never mentions and
from how close the nearest passage is (the dense leg's best cosine). Calibrated in
docs/RETRIEVAL.md ("Coverage") on the dev and tuning questions only."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["covered", "not_covered"]

_TOKEN = re.compile(r"[A-Za-z0-9_]+")
_CAMEL = re.compile(r"[a-z][A-Z]|[A-Z]{2,}[a-z]")

# score = the nearest passage's cosine - PENALTY per specific term the book never mentions;
# below THRESHOLD the question is not covered. On the dev and tuning questions no answerable
# one names a missing specific term and none has a nearest passage below 0.39, while half the
# unanswerable ones name a tool, part or variable the book lacks (`SITL`, `AMCL`,
# `ROS_MAX_NODES_PER_PROCESS`): one such term refuses a question whose nearest passage is
# under 0.65, two refuse any. Lowercase words the book never uses are not counted: they are
# mostly typos and contractions ("cylnder", "doesnt") and did not separate the two kinds.
PENALTY = 0.35
THRESHOLD = 0.30
# When the dense leg's own cosine is unknown (a lexical-only search, or the engine fused the
# legs), the terms decide alone: one missing specific term is enough, as on every set the
# calibration saw.
NO_DENSE = THRESHOLD + PENALTY - 0.01


@dataclass(frozen=True)
class Term:
    text: str
    specific: bool  # identifier-like: digit, underscore, acronym or CamelCase


def is_specific(token: str) -> bool:
    """A name rather than a word: `ESP32`, `ekf_node`, `DWB`, `PathAlign`."""
    if "_" in token or any(c.isdigit() for c in token):
        return not token.isdigit()  # a bare number is a value, not a name
    return (len(token) >= 2 and token.isupper()) or bool(_CAMEL.search(token))


def query_terms(query: str) -> list[Term]:
    """The query's distinct tokens worth looking up (two characters or more)."""
    seen: dict[str, Term] = {}
    for token in _TOKEN.findall(query):
        token = token.strip("_")
        if len(token) >= 2 and not token.isdigit() and token.lower() not in seen:
            seen[token.lower()] = Term(token, is_specific(token))
    return list(seen.values())


@dataclass(frozen=True)
class Coverage:
    verdict: Verdict
    score: float  # the nearest passage's cosine less PENALTY per missing specific term

    def as_dict(self) -> dict:
        return {"verdict": self.verdict, "score": self.score}


def missing_specific(terms: list[Term], present: dict[str, bool]) -> int:
    """Specific terms the book never mentions (`present` by lowercase token; a token absent
    from it, e.g. a stop word, counts as present)."""
    return sum(1 for t in terms if t.specific and not present.get(t.text.lower(), True))


def judge(terms: list[Term], present: dict[str, bool], dense_top: float | None) -> Coverage:
    """The verdict from which terms the book mentions and the best dense cosine (None when
    unknown)."""
    nearest = NO_DENSE if dense_top is None else dense_top
    score = round(nearest - PENALTY * missing_specific(terms, present), 4)
    return Coverage("not_covered" if score < THRESHOLD else "covered", score)
