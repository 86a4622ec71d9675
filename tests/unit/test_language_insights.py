"""Without a stack: which language an answer is written in and when a question is put into
English before the search; how the insights group near-duplicate questions, keep readers
opaque and write CSV cells that a spreadsheet cannot run."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from lectern_chat import insights, language, prompt
from lectern_dev.fake_gemini import english_rewrite

URDU = "آئی ایم یو کیا ناپتا ہے؟"


@pytest.mark.parametrize(
    ("question", "requested", "rewrite"),
    [
        (URDU, None, True),
        (URDU, "en", True),  # answered in English, still searched in English
        ("What does an IMU measure?", "ur", False),
        ("ROS 2 mein IMU ka data kaise parhein?", "ur", True),
        ("ROS 2 mein IMU ka data kaise parhein?", None, False),
        ("How do I install ROS 2?", None, False),
    ],
)
def test_when_a_question_is_searched_in_english(
    question: str, requested: language.Language | None, rewrite: bool
):
    assert language.needs_english_query(question, requested) is rewrite


def test_the_answer_language_is_the_request_then_the_profile_then_the_question():
    assert language.answer_language(URDU, requested="en", profile_default="ur") == "en"
    assert language.answer_language("What is a node?", requested=None, profile_default="ur") == "ur"
    assert language.answer_language(URDU, requested=None, profile_default=None) == "ur"
    assert language.answer_language("What is a node?", requested=None, profile_default=None) == "en"
    assert language.answer_language(URDU, requested=None, profile_default="xx") == "ur"


def test_only_a_latin_question_that_is_not_english_waits_for_the_profile():
    assert language.may_need_profile("IMU kya naapta hai?", None)
    assert not language.may_need_profile("IMU kya naapta hai?", "en")
    assert not language.may_need_profile(URDU, None)
    assert not language.may_need_profile("What does an IMU measure?", None)


def test_the_system_instruction_asks_for_the_language():
    urdu = prompt.system_instruction(profile=None, selection=False, language="ur")
    assert "in Urdu" in urdu and "Keep code, commands" in urdu
    assert "Write the answer in English." in prompt.system_instruction(
        profile=None, selection=False, language="en"
    )
    assert "Urdu" not in prompt.system_instruction(profile=None, selection=False)


def test_the_fakes_rewrite_is_english():
    assert english_rewrite(f"Question: {URDU}\n\nEnglish search query:") == "IMU what measure"
    assert prompt.cleaned_query("English search query: IMU what measure") == "IMU what measure"


def row(question: str, minutes_ago: int, reader: str = "r1") -> dict:
    at = datetime(2026, 1, 1, tzinfo=UTC) - timedelta(minutes=minutes_ago)
    return {"question": question, "query": question, "created_at": at, "reader": reader}


def test_near_duplicates_are_one_group_and_others_their_own():
    rows = [
        row("how can i flash micro-ROS onto an ESP32", 1, "r2"),
        row("How do I flash micro-ROS onto an ESP32?", 2),
        row("Which battery does the robot run on?", 3),
        row("HOW DO I FLASH MICRO-ROS ONTO AN ESP32", 4),
    ]
    groups = insights.group_questions(rows, threshold=0.6)
    assert [(g["question"], g["count"], g["readers"]) for g in groups] == [
        ("how can i flash micro-ROS onto an ESP32", 3, 2),
        ("Which battery does the robot run on?", 1, 1),
    ]
    assert insights.group_questions(rows, threshold=1.0)[0]["count"] == 3  # same words
    assert len(insights.group_questions([row("a b c", 1), row("a b d", 2)], threshold=0.6)) == 2


def test_reader_ids_are_opaque_and_stable():
    key = b"k" * 32
    one = insights.opaque_reader("reader:abc", key)
    assert one == insights.opaque_reader("reader:abc", key) and "abc" not in one
    assert one != insights.opaque_reader("reader:abd", key)
    assert one != insights.opaque_reader("reader:abc", b"j" * 32)


def test_csv_cells_never_start_a_formula():
    data = {
        "chapters": [],
        "uncovered": {"groups": []},
        "down_rated": [
            {
                "chapters": ["c"],
                "question": "=1+1",
                "reader": "r",
                "comment": "@SUM(A1)",
                "rated_at": datetime(2026, 1, 1, tzinfo=UTC),
            }
        ],
        "citations": {"share": None, "unsupported": 0, "checked": 0},
    }
    rows = list(csv.DictReader(io.StringIO(insights.as_csv(data))))
    assert rows[0]["text"] == "'=1+1" and rows[0]["comment"] == "'@SUM(A1)"
