"""Answers in the reader's language, through the gateway with the real google-genai client
against the fake Gemini: an Urdu question is searched in English (the model rewrites it; the
fake's request log shows the rewrite and its reply) and answered in Urdu, with the English
sources cited; the request's `language` and the profile's default decide the language."""

from __future__ import annotations

import httpx
import pytest

from lectern_dev.harness.chat import ask, stored_answer
from lectern_dev.harness.readers import Reader, new_reader
from lectern_dev.harness.services import fake_requests

# "What does the IMU measure on a walking humanoid robot?"
URDU_QUESTION = "چلنے والے ہیومنائڈ روبوٹ پر آئی ایم یو کیا ناپتا ہے؟"
ASKS_FOR_URDU = "Write the whole answer in Urdu"
ASKS_FOR_ENGLISH = "Write the answer in English."
UNCOVERED = (
    "How do I flash micro-ROS onto an ESP32 and connect it to the micro_ros_agent over UART?"
)


@pytest.fixture(scope="module")
def reader(chat: httpx.Client) -> Reader:
    return new_reader(chat)


def rewrites(fake: httpx.Client) -> list[dict]:
    """The model's one-shot calls (rewrites into a search query), with the fake's replies."""
    return fake_requests(fake, "generateContent")


def answer_prompt(fake: httpx.Client) -> str:
    prompts = [r["prompt"] for r in fake_requests(fake, "streamGenerateContent")]
    assert len(prompts) == 1, prompts
    return prompts[0]


def is_english(text: str) -> bool:
    return text.isascii() and any(c.isalpha() for c in text)


def test_an_urdu_question_is_searched_in_english_and_answered_in_urdu(
    chat: httpx.Client, fake: httpx.Client, book: dict
):
    answer = ask(chat, {"message": URDU_QUESTION})
    assert answer.last.event == "done", answer.events
    # One short model call put the question into an English search query...
    (rewrite,) = rewrites(fake)
    assert URDU_QUESTION in rewrite["prompt"] and "English search query" in rewrite["prompt"]
    query = rewrite["reply"]
    assert is_english(query) and "IMU" in query
    stored = stored_answer(chat, answer, answer.guest)
    assert stored["query"] == query  # ...and that is what the book was searched for,
    sources = answer.one("sources")["sources"]
    assert any(s["chapter_id"] == "book--05-sensors" for s in sources)  # finding the IMU
    # The answer prompt asks for Urdu, keeps code and commands as they are, and gives the
    # English sources to cite by number; the reader's question is sent as they wrote it.
    prompt = answer_prompt(fake)
    assert ASKS_FOR_URDU in prompt and ASKS_FOR_ENGLISH not in prompt
    assert "Keep code, commands" in prompt and "Cite the English sources" in prompt
    assert f"[1] {sources[0]['title']}" in prompt and URDU_QUESTION in prompt
    assert answer.one("done")["language"] == "ur" and stored["language"] == "ur"
    assert answer.one("done")["citations"] == [1]  # the fake cites [1]: an English source


def test_language_en_answers_an_urdu_question_in_english(
    chat: httpx.Client, fake: httpx.Client, book: dict
):
    answer = ask(chat, {"message": URDU_QUESTION, "language": "en"})
    assert answer.last.event == "done"
    (rewrite,) = rewrites(fake)  # still searched in English
    assert stored_answer(chat, answer, answer.guest)["query"] == rewrite["reply"]
    prompt = answer_prompt(fake)
    assert ASKS_FOR_ENGLISH in prompt and ASKS_FOR_URDU not in prompt
    assert answer.one("done")["language"] == "en"


def test_roman_urdu_asked_in_urdu_is_rewritten_but_english_is_searched_as_it_is(
    chat: httpx.Client, fake: httpx.Client, book: dict
):
    roman = "ROS 2 mein IMU ka data kaise parhein?"
    answer = ask(chat, {"message": roman, "language": "ur"})
    assert answer.last.event == "done"
    (rewrite,) = rewrites(fake)
    assert roman in rewrite["prompt"]
    assert ASKS_FOR_URDU in answer_prompt(fake)

    fake.post("/_fake/reset")
    english = "What does an IMU measure on a walking humanoid?"
    answer = ask(chat, {"message": english, "language": "ur"})
    assert rewrites(fake) == []  # an English question costs no rewrite
    assert stored_answer(chat, answer, answer.guest)["query"] == english
    assert ASKS_FOR_URDU in answer_prompt(fake)


def test_the_profile_language_is_the_readers_default(
    chat: httpx.Client, fake: httpx.Client, book: dict, reader: Reader
):
    saved = chat.put("/api/profile/me", json={"language": "ur"}, headers=reader.headers)
    assert saved.status_code == 200 and saved.json()["language"] == "ur"
    assert chat.get("/api/profile/me", headers=reader.headers).json()["language"] == "ur"
    answer = ask(chat, {"message": "What does an IMU measure?"}, headers=reader.headers)
    assert answer.one("done")["language"] == "ur"
    assert ASKS_FOR_URDU in answer_prompt(fake)

    fake.post("/_fake/reset")  # the request's language wins over the profile's
    answer = ask(
        chat, {"message": "What does an IMU measure?", "language": "en"}, headers=reader.headers
    )
    assert answer.one("done")["language"] == "en"
    assert ASKS_FOR_ENGLISH in answer_prompt(fake)


def test_roman_urdu_is_rewritten_when_the_profile_says_urdu(
    chat: httpx.Client, fake: httpx.Client, book: dict, reader: Reader
):
    chat.put("/api/profile/me", json={"language": "ur"}, headers=reader.headers)
    roman = "IMU kya naapta hai?"
    answer = ask(chat, {"message": roman}, headers=reader.headers)
    assert answer.last.event == "done"
    (rewrite,) = rewrites(fake)
    assert roman in rewrite["prompt"]


def test_a_language_other_than_urdu_or_english_is_refused(
    chat: httpx.Client, fake: httpx.Client, book: dict, reader: Reader
):
    refused = ask(chat, {"message": "What is a node?", "language": "fr"})
    assert refused.status == 422
    assert fake_requests(fake) == []
    profile = chat.put("/api/profile/me", json={"language": "fr"}, headers=reader.headers)
    assert profile.status_code == 422
    assert chat.get("/api/profile/options").json()["language"] == ["ur", "en"]


def test_an_uncovered_question_tells_an_urdu_reader_so_in_urdu(
    chat: httpx.Client, fake: httpx.Client, book: dict
):
    answer = ask(chat, {"message": UNCOVERED, "language": "ur"})
    assert answer.one("sources")["coverage"]["verdict"] == "not_covered"
    assert answer.text.startswith("یہ کتاب اس سوال کا جواب نہیں دیتی")
    assert answer.one("done")["language"] == "ur"
    assert fake_requests(fake) == []  # still no model call
