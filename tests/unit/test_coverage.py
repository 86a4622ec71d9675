"""The coverage rule on a table of examples: which query tokens are specific names, the
verdict from the terms the book lacks and the nearest passage's cosine; and the chat's
answer to a question the book does not cover."""

from __future__ import annotations

import pytest

from lectern_chat import extractive
from lectern_common.contracts import SearchResult
from lectern_retrieval import coverage


@pytest.mark.parametrize(
    ("token", "specific"),
    [
        ("ESP32", True),
        ("ekf_node", True),
        ("ROS_MAX_NODES_PER_PROCESS", True),
        ("DWB", True),
        ("PathAlign", True),
        ("gz", False),
        ("Gazebo", False),  # a capitalised word, not a name by its shape
        ("cylnder", False),
        ("1588", False),  # a bare number is a value
    ],
)
def test_specific_terms_are_names_by_their_shape(token: str, specific: bool) -> None:
    assert coverage.is_specific(token) is specific


def test_query_terms_are_distinct_tokens_of_two_characters_or_more() -> None:
    terms = coverage.query_terms("Does the `ekf_node` of EKF fuse an IMU? ekf_node, a 10:1 ratio")
    assert [(t.text, t.specific) for t in terms] == [
        ("Does", False),
        ("the", False),
        ("ekf_node", True),
        ("of", False),
        ("EKF", True),
        ("fuse", False),
        ("an", False),
        ("IMU", True),
        ("ratio", False),
    ]


def _verdict(query: str, absent: set[str], dense_top: float | None) -> tuple[str, float]:
    terms = coverage.query_terms(query)
    present = {t.text.lower(): t.text.lower() not in absent for t in terms}
    found = coverage.judge(terms, present, dense_top)
    return found.verdict, found.score


@pytest.mark.parametrize(
    ("query", "absent", "dense_top", "verdict"),
    [
        # Every word known, close passage.
        ("What does an IMU measure?", set(), 0.72, "covered"),
        # Every word known but the nearest passage is far: the lowest answerable was 0.39.
        ("Which wine pairs with pizza?", set(), 0.12, "not_covered"),
        # Typos and contractions alone never refuse, however far the passage.
        ("my wheel cylnder doesnt roll sideways", {"cylnder", "doesnt"}, 0.44, "covered"),
        # One missing name refuses when the nearest passage is not close...
        ("How do I flash an ESP32 over UART?", {"esp32"}, 0.58, "not_covered"),
        # ... and not when it is.
        ("How do I flash an ESP32 over UART?", {"esp32"}, 0.70, "covered"),
        # Two missing names refuse even a close passage.
        ("Which UDP port do SITL and MAVLink use?", {"sitl", "mavlink"}, 0.70, "not_covered"),
        # No dense score (lexical-only search): one missing name is enough, none is not.
        ("How do I tune AMCL?", {"amcl"}, None, "not_covered"),
        ("How do I tune the IMU?", set(), None, "covered"),
    ],
)
def test_verdicts(query: str, absent: set[str], dense_top: float | None, verdict: str) -> None:
    assert _verdict(query, absent, dense_top)[0] == verdict


def test_the_score_is_the_cosine_less_a_penalty_per_missing_name() -> None:
    assert _verdict("Tune AMCL with min_particles", {"amcl", "min_particles"}, 0.5) == (
        "not_covered",
        round(0.5 - 2 * coverage.PENALTY, 4),
    )
    assert _verdict("What does an IMU measure?", set(), 0.61234) == ("covered", 0.6123)


def _result(n: int, title: str, section: str) -> SearchResult:
    return SearchResult(
        chunk_id=f"chunk-{n}",
        chapter_id=f"book--{n}",
        title=title,
        section=section,
        url=f"/docs/{n}",
        source_path=f"{n}.md",
        text="Some passage.",
        score=0.1,
    )


def test_the_not_covered_answer_names_each_nearest_section_once_with_its_number() -> None:
    results = [
        _result(1, "Sensors", "IMU"),
        _result(2, "Sensors", "IMU"),  # a second passage of the same section
        _result(3, "Control", "Control"),
        _result(4, "Safety", "E-stop"),
        _result(5, "Perception", "Cameras"),
    ]
    text = extractive.not_covered(results)
    assert text.startswith(extractive.NOT_COVERED)
    assert text.splitlines()[-3:] == [
        "- Sensors > IMU [1]",
        "- Control [3]",
        "- Safety > E-stop [4]",
    ]
    assert extractive.not_covered([]) == extractive.NOT_COVERED
