"""The citation check without a stack: which sentence each marker closes, and the support
score calibrated on pairs written over the sample book (book/): sentences a source supports
and sentences it does not (cited to the wrong source, or partly invented)."""

from __future__ import annotations

import pytest

from lectern_chat import citations
from lectern_dev.harness.citation_pairs import (
    MISSED_PARAPHRASES,
    SOURCES,
    SUPPORTED,
    UNSUPPORTED,
)


def only_check(sentence: str) -> citations.Check:
    [check] = citations.check(sentence, SOURCES)
    return check


@pytest.mark.parametrize("sentence", UNSUPPORTED)
def test_a_sentence_the_cited_passage_does_not_support_is_flagged(sentence: str):
    check = only_check(sentence)
    assert check.supported is False and check.score is not None
    assert check.score < citations.SUPPORT_THRESHOLD


def test_the_sentences_their_passages_support_pass():
    checks = [only_check(s) for s in SUPPORTED]
    missed = [s for s, c in zip(SUPPORTED, checks, strict=True) if not c.supported]
    assert len(missed) <= MISSED_PARAPHRASES, missed
    assert all(c.score is not None and 0 <= c.score <= 1 for c in checks)


def test_supported_pairs_score_above_unsupported_ones_on_average():
    supported = [only_check(s).score or 0 for s in SUPPORTED]
    unsupported = [only_check(s).score or 0 for s in UNSUPPORTED]
    assert sum(supported) / len(supported) > 2 * sum(unsupported) / len(unsupported)


def test_each_marker_closes_its_own_sentence():
    answer = (
        "An IMU reports angular velocity [1]. Lidar works in darkness [2][1].\n"
        "- Gazebo bridges topics [3, 4]\n"
        "See the code `ros2 run x [5]` and:\n```\ngz topic -l [2]\n```\nDone [1]."
    )
    assert citations.claims(answer) == [
        (1, "An IMU reports angular velocity"),
        (2, "Lidar works in darkness"),
        (1, "Lidar works in darkness"),
        (3, "- Gazebo bridges topics"),
        (4, "- Gazebo bridges topics"),
        (1, "Done"),
    ]


def test_a_marker_after_the_full_stop_closes_the_sentence_before_it():
    assert citations.claims("Lidar works in darkness. [2] Next one [1].") == [
        (2, "Lidar works in darkness."),
        (1, "Next one"),
    ]


def test_a_marker_naming_no_source_is_dangling():
    checks = citations.check("An IMU reports angular velocity [7]. See [0].", SOURCES)
    assert [c.as_dict() for c in checks] == [
        {"n": 7, "supported": False, "score": None, "dangling": True},
        {"n": 0, "supported": False, "score": None, "dangling": True},
    ]


def test_an_answer_without_markers_has_no_checks():
    assert citations.check("The book does not cover this.", SOURCES) == []
