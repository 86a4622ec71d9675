"""The answer stream through the gateway, with the real google-genai client against the fake
Gemini: event order, sources, citations, storage, follow-ups, selection mode and failures."""

from __future__ import annotations

import httpx

from lectern_dev.harness.chat import ask, stored_answer
from lectern_dev.harness.services import fake_requests

QUESTION = "What does an IMU measure on a walking humanoid?"
SOURCE_FIELDS = {"n", "chapter_id", "title", "section", "url", "source_path", "score", "snippet"}


def stream_prompts(fake: httpx.Client) -> list[str]:
    return [r["prompt"] for r in fake_requests(fake, "streamGenerateContent")]


def test_events_arrive_in_order_with_sources_before_the_first_token(
    chat: httpx.Client, fake: httpx.Client, book: dict
):
    answer = ask(chat, {"message": QUESTION}, headers={"accept-encoding": "gzip"})
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.headers["x-accel-buffering"] == "no"
    assert "content-encoding" not in answer.headers  # never compressed

    names = [e.event for e in answer.events]
    assert names[:2] == ["meta", "sources"]
    assert names[-1] == "done"
    assert set(names[2:-1]) == {"token"} and len(names) > 3
    assert [e.id for e in answer.events] == list(range(1, len(names) + 1))

    meta = answer.meta
    assert meta["mode"] == "book"
    assert len(meta["guest_token"]) >= 40
    sources = answer.one("sources")["sources"]
    assert sources and all(set(s) == SOURCE_FIELDS for s in sources)
    assert [s["n"] for s in sources] == list(range(1, len(sources) + 1))
    assert any(s["chapter_id"] == "book--05-sensors" for s in sources)

    done = answer.one("done")
    assert done["message_id"] == meta["message_id"]
    assert done["finish_reason"] == "stop"
    assert done["usage"]["output_tokens"] > 0
    timings = done["timings_ms"]
    assert 0 <= timings["retrieval"] <= timings["first_token"] <= timings["total"]
    # The model was given the numbered sources and the question.
    prompt = stream_prompts(fake)[-1]
    assert "[1] " in prompt and QUESTION in prompt and sources[0]["title"] in prompt


def test_the_answer_is_stored_with_its_conversation(
    chat: httpx.Client, fake: httpx.Client, book: dict
):
    answer = ask(chat, {"message": QUESTION})
    headers = answer.guest
    listing = chat.get("/api/chat/conversations", headers=headers).json()["conversations"]
    assert [c["id"] for c in listing] == [answer.meta["conversation_id"]]
    assert listing[0]["title"] == QUESTION and listing[0]["message_count"] == 2

    conversation = chat.get(
        f"/api/chat/conversations/{answer.meta['conversation_id']}", headers=headers
    ).json()
    question, reply = conversation["messages"]
    assert (question["role"], question["content"]) == ("user", QUESTION)
    assert reply["role"] == "assistant" and reply["status"] == "complete"
    assert reply["content"] == answer.text
    assert reply["sources"] == answer.one("sources")["sources"]
    assert reply["citations"] == answer.one("done")["citations"]
    assert reply["timings_ms"] == answer.one("done")["timings_ms"]
    assert reply["model"] == answer.one("done")["model"]
    assert reply["query"] == QUESTION


def test_citations_point_at_real_sources(chat: httpx.Client, fake: httpx.Client, book: dict):
    fake.post(
        "/_fake/config",
        json={
            "default_reply": (
                "An IMU measures angular velocity and acceleration [2]. It tells the balance "
                "controller which way is down [1][2]. Robots dream of sheep [9]."
            )
        },
    )
    answer = ask(chat, {"message": QUESTION})
    sources = answer.one("sources")["sources"]
    assert len(sources) >= 2
    # [9] matches no source: it is not reported as a citation.
    assert answer.one("done")["citations"] == [2, 1]
    assert stored_answer(chat, answer, answer.guest)["citations"] == [2, 1]


def test_the_model_is_told_to_say_when_the_book_does_not_cover_it(
    chat: httpx.Client, fake: httpx.Client, book: dict
):
    ask(chat, {"message": QUESTION})
    prompt = stream_prompts(fake)[-1]
    # For a covered question whose passages still miss the point: say so, never invent.
    assert "the book does not cover it" in prompt
    assert "never invent" in prompt


def test_a_covered_question_is_judged_covered_and_goes_to_the_model(
    chat: httpx.Client, fake: httpx.Client, book: dict
):
    answer = ask(chat, {"message": QUESTION})
    coverage = answer.one("sources")["coverage"]
    assert coverage["verdict"] == "covered" and isinstance(coverage["score"], float)
    assert len(stream_prompts(fake)) == 1
    assert answer.one("done")["finish_reason"] == "stop"


# The sample book never mentions micro-ROS's agent, an ESP32 or a UART.
UNCOVERED = (
    "How do I flash micro-ROS onto an ESP32 and connect it to the micro_ros_agent over UART?"
)


def test_an_uncovered_question_is_answered_as_such_without_a_model_call(
    chat: httpx.Client, fake: httpx.Client, book: dict
):
    answer = ask(chat, {"message": UNCOVERED})
    assert fake_requests(fake) == []  # no model call at all: it costs nothing
    event = answer.one("sources")
    assert event["coverage"]["verdict"] == "not_covered"
    sources = event["sources"]
    assert sources  # the nearest sections are still listed...
    done = answer.one("done")
    assert done["finish_reason"] == "not_covered"
    assert done["model"] == "extractive" and done["citations"] == []
    assert "does not seem to cover" in answer.text
    assert "no language model" not in answer.text  # a model is configured: no offline label
    # ... and named in the answer with their numbers, which the reader turns into links.
    assert f"{sources[0]['title']}" in answer.text and "[1]" in answer.text
    stored = stored_answer(chat, answer, answer.guest)
    assert stored["content"] == answer.text and stored["finish_reason"] == "not_covered"


def test_follow_up_is_rewritten_with_the_history(
    chat: httpx.Client, fake: httpx.Client, book: dict
):
    first = ask(chat, {"message": "How does Gazebo simulate a lidar?"})
    headers = first.guest
    rewritten = "Gazebo lidar sensor noise model"
    fake.post(
        "/_fake/config", json={"replies": [{"contains": "Stand-alone query", "reply": rewritten}]}
    )
    follow = ask(
        chat,
        {"message": "And how noisy is it?", "conversation_id": first.meta["conversation_id"]},
        headers=headers,
    )
    assert follow.last.event == "done"
    assert "guest_token" not in follow.meta  # the guest already has it

    rewrites = fake_requests(fake, "generateContent")
    assert len(rewrites) == 1
    assert "How does Gazebo simulate a lidar?" in rewrites[0]["prompt"]
    assert first.text.strip()[:60] in rewrites[0]["prompt"]
    assert "And how noisy is it?" in rewrites[0]["prompt"]
    # The answer prompt carries the history as earlier turns, and the stored answer records
    # the query that was searched.
    assert first.text.strip()[:60] in stream_prompts(fake)[-1]
    assert stored_answer(chat, follow, headers)["query"] == rewritten


def test_follow_up_uses_the_question_when_rewriting_fails(
    chat: httpx.Client, fake: httpx.Client, book: dict
):
    first = ask(chat, {"message": "How does Gazebo simulate a lidar?"})
    headers = first.guest
    fake.post("/_fake/config", json={"fail_next": [400]})  # the rewrite call is refused
    follow = ask(
        chat,
        {"message": "And a depth camera?", "conversation_id": first.meta["conversation_id"]},
        headers=headers,
    )
    assert follow.last.event == "done"
    assert stored_answer(chat, follow, headers)["query"] == "And a depth camera?"


def test_selection_mode_sends_the_selected_passage(
    chat: httpx.Client, fake: httpx.Client, book: dict
):
    passage = (
        "Accelerometers are noisy but do not drift; gyroscopes are smooth but drift over time."
    )
    answer = ask(chat, {"message": "Why combine them?", "selected_text": passage})
    assert answer.meta["mode"] == "selection"
    assert answer.last.event == "done"
    prompt = stream_prompts(fake)[-1]
    assert passage in prompt and "selected a passage" in prompt
    conversation = chat.get(
        f"/api/chat/conversations/{answer.meta['conversation_id']}", headers=answer.guest
    ).json()
    question, reply = conversation["messages"]
    assert question["selected_text"] == passage
    assert question["mode"] == reply["mode"] == "selection"


def test_chapter_filter_limits_the_sources(chat: httpx.Client, fake: httpx.Client, book: dict):
    answer = ask(
        chat, {"message": "How is data published?", "chapter_id": "book--05-sensors", "top_k": 2}
    )
    sources = answer.one("sources")["sources"]
    assert 1 <= len(sources) <= 2
    assert {s["chapter_id"] for s in sources} == {"book--05-sensors"}


def test_rate_limited_model_is_retried_before_the_first_token(
    chat: httpx.Client, fake: httpx.Client, book: dict
):
    fake.post("/_fake/config", json={"fail_next": [429]})
    answer = ask(chat, {"message": QUESTION})
    assert answer.last.event == "done"
    assert answer.named("error") == []
    assert len(stream_prompts(fake)) == 2
    assert answer.one("done")["usage"]["attempts"] == 2


def test_model_failure_after_tokens_ends_with_an_error_event(
    chat: httpx.Client, fake: httpx.Client, book: dict
):
    fake.post("/_fake/config", json={"fail_after_chunks": 2, "words_per_chunk": 2})
    answer = ask(chat, {"message": QUESTION})
    assert [e.event for e in answer.events][-4:] == ["sources", "token", "token", "error"]
    error = answer.one("error")
    assert error["code"] == "llm_unavailable" and error["retryable"] is True
    assert len(stream_prompts(fake)) == 1  # text was sent: never retried
    stored = stored_answer(chat, answer, answer.guest)
    assert stored["status"] == "failed"
    assert stored["content"] == answer.text and stored["error"]["code"] == "llm_unavailable"


def test_a_connection_dropped_by_the_model_ends_with_an_error_event(
    chat: httpx.Client, fake: httpx.Client, book: dict
):
    fake.post("/_fake/config", json={"drop_after_chunks": 2, "words_per_chunk": 2})
    answer = ask(chat, {"message": QUESTION})
    assert [e.event for e in answer.events][-3:] == ["token", "token", "error"]
    error = answer.one("error")
    assert error["code"] == "llm_error" and error["retryable"] is True
    stored = stored_answer(chat, answer, answer.guest)
    assert stored["status"] == "failed" and stored["content"] == answer.text


def test_a_model_stalled_after_its_first_token_ends_with_an_error_at_the_timeout(
    chat: httpx.Client, fake: httpx.Client, book: dict, limits
):
    # (A stall before the first token gets an extractive answer instead: test_trust.py.)
    fake.post("/_fake/config", json={"stall_after_chunks": 1})
    answer = ask(chat, {"message": QUESTION})
    assert [e.event for e in answer.events][-2:] == ["token", "error"]
    error = answer.one("error")
    assert error["code"] == "llm_timeout" and error["retryable"] is True
    assert len(answer.named("token")) == 1
    # Not before the configured timeout (how soon after it: bench/timeouts_bench.py).
    assert answer.gap_before_last() >= limits.between_tokens_timeout_s - 0.5
    assert stored_answer(chat, answer, answer.guest)["status"] == "failed"
