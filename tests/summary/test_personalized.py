"""Personalized chapters: signed-in readers only, one shared version per audience segment,
streamed with the chat's event names, errors as `error` events with nothing cached, and code
blocks of the chapter kept verbatim."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from lectern_dev.harness.books import chapter_id_of, ingest
from lectern_dev.harness.polling import wait_until
from lectern_dev.harness.readers import Reader, new_reader
from lectern_dev.harness.replicas import Replica
from lectern_dev.harness.services import model_calls
from lectern_dev.harness.sse import Event, parse_text
from lectern_dev.stack import Stack

BEGINNER_SIM = {
    "python_level": "beginner",
    "cpp_level": "none",
    "ai_ml_level": "none",
    "ros2_level": "none",
    "hardware_access": "simulation_only",
}
ADVANCED_ROBOT = {
    "python_level": "advanced",
    "cpp_level": "advanced",
    "ai_ml_level": "advanced",
    "ros2_level": "advanced",
    "hardware_access": "physical_robot",
}
STREAM = {"accept": "text/event-stream"}


def reader_with(gateway: httpx.Client, profile: dict) -> Reader:
    reader = new_reader(gateway)
    response = gateway.put("/api/profile/me", headers=reader.headers, json=profile)
    assert response.status_code == 200, response.text
    return reader


@pytest.fixture(scope="module")
def beginners(gateway: httpx.Client) -> tuple[Reader, Reader]:
    return (
        reader_with(gateway, BEGINNER_SIM),
        reader_with(gateway, {**BEGINNER_SIM, "goals": "build a walking robot"}),
    )


@pytest.fixture(scope="module")
def expert(gateway: httpx.Client) -> Reader:
    return reader_with(gateway, ADVANCED_ROBOT)


def personalize(
    gateway: httpx.Client, chapter_id: str, reader: Reader, headers: dict | None = None
) -> httpx.Response:
    return gateway.post(
        f"/api/summary/chapters/{chapter_id}/personalized",
        headers={**reader.headers, **(headers or {})},
    )


def assert_stream_shape(events: list[Event]) -> None:
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    assert events[0].event == "meta"
    assert {e.event for e in events[1:-1]} == {"token"}
    assert events[-1].event in ("done", "error")


def test_readers_of_one_segment_share_one_version(
    gateway: httpx.Client, fake_gemini, chapter, beginners, expert, stack: Stack, stored
):
    first = personalize(gateway, chapter["id"], beginners[0])
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["kind"], body["cached"]) == ("personalized", False)
    same = personalize(gateway, chapter["id"], beginners[1]).json()
    assert same["cached"] is True
    assert (same["text"], same["audience"]) == (body["text"], body["audience"])
    assert len(model_calls(fake_gemini)) == 1

    other = personalize(gateway, chapter["id"], expert).json()
    assert other["cached"] is False
    assert other["audience"] != body["audience"]
    assert other["text"] != body["text"]
    calls = model_calls(fake_gemini)
    assert len(calls) == 2
    # Only the segment reaches the shared prompt, never one reader's own goals.
    assert all("walking robot" not in c["prompt"] for c in calls)
    assert sorted(r["audience"] for r in stored(stack, chapter["id"])) == sorted(
        [body["audience"], other["audience"]]
    )


def test_stream_has_the_chat_event_order_and_matches_the_stored_text(
    gateway: httpx.Client, fake_gemini, chapter, beginners
):
    live = personalize(gateway, chapter["id"], beginners[0], STREAM)
    assert live.status_code == 200
    assert live.headers["content-type"].startswith("text/event-stream")
    events = parse_text(live.text)
    assert_stream_shape(events)
    assert events[0].data["chapter_id"] == chapter["id"]
    assert events[0].data["kind"] == "personalized"
    assert len(events) > 3  # the model's reply arrived in several pieces
    done = events[-1].data
    assert (done["cached"], done["model"], done["finish_reason"]) == (
        False,
        "gemini-2.5-flash",
        "stop",
    )
    streamed = "".join(e.data["text"] for e in events if e.event == "token")

    cached = personalize(gateway, chapter["id"], beginners[1]).json()
    assert cached["cached"] is True and cached["text"] == streamed
    replay = parse_text(personalize(gateway, chapter["id"], beginners[1], STREAM).text)
    assert_stream_shape(replay)
    assert replay[-1].data["cached"] is True
    assert "".join(e.data["text"] for e in replay if e.event == "token") == streamed
    assert len(model_calls(fake_gemini)) == 1


def test_concurrent_streams_get_the_same_text_from_one_model_call(
    gateway: httpx.Client, fake_gemini, chapter, beginners
):
    fake_gemini.post("/_fake/config", json={"ttft_ms": 500, "token_interval_ms": 20})
    barrier = threading.Barrier(6)

    def one(i: int) -> list[Event]:
        barrier.wait()
        return parse_text(personalize(gateway, chapter["id"], beginners[i % 2], STREAM).text)

    with ThreadPoolExecutor(6) as pool:
        streams = list(pool.map(one, range(6)))
    texts = set()
    for events in streams:
        assert_stream_shape(events)
        assert events[-1].event == "done"
        texts.add("".join(e.data["text"] for e in events if e.event == "token"))
    assert len(texts) == 1
    assert sum(not events[-1].data["cached"] for events in streams) == 1
    assert len(model_calls(fake_gemini)) == 1


def test_failure_mid_stream_is_an_error_event_and_nothing_is_cached(
    gateway: httpx.Client, fake_gemini, chapter, beginners, stack: Stack, stored
):
    fake_gemini.post("/_fake/config", json={"fail_after_chunks": 2})
    events = parse_text(personalize(gateway, chapter["id"], beginners[0], STREAM).text)
    assert_stream_shape(events)
    assert events[-1].event == "error"
    assert events[-1].data["code"] == "llm_unavailable"
    assert events[-1].data["retryable"] is True
    assert stored(stack, chapter["id"]) == []

    fake_gemini.post("/_fake/config", json={})
    again = parse_text(personalize(gateway, chapter["id"], beginners[0], STREAM).text)
    assert again[-1].event == "done" and again[-1].data["cached"] is False
    assert len(stored(stack, chapter["id"])) == 1


def test_reader_leaving_mid_stream_does_not_lose_the_text(
    gateway: httpx.Client, fake_gemini, chapter, beginners, stack: Stack, stored
):
    fake_gemini.post("/_fake/config", json={"token_interval_ms": 100, "words_per_chunk": 1})
    with gateway.stream(
        "POST",
        f"/api/summary/chapters/{chapter['id']}/personalized",
        headers={**beginners[0].headers, **STREAM},
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line == "event: token":
                break  # leave after the first piece
    assert stored(stack, chapter["id"]) == []  # the model is still writing
    wait_until(lambda: stored(stack, chapter["id"]), 30, interval_s=0.2, message="never stored")
    later = personalize(gateway, chapter["id"], beginners[1]).json()
    assert later["cached"] is True
    assert later["text"].startswith("This is the fake model's answer")
    assert len(model_calls(fake_gemini)) == 1


def test_a_quiet_stream_sends_keep_alive_comments(
    fake_gemini, chapter, beginners, replica: Replica
):
    fake_gemini.post("/_fake/config", json={"ttft_ms": 1200})
    with replica.client() as client:
        response = client.post(
            f"/api/summary/chapters/{chapter['id']}/personalized",
            headers={"x-user-id": beginners[0].user_id, **STREAM},
        )
    assert response.status_code == 200
    body = response.text
    assert ": keep-alive" in body
    assert body.index("event: meta") < body.index(": keep-alive") < body.index("event: token")
    events = parse_text(body)
    assert_stream_shape(events)
    assert events[-1].event == "done"


def test_model_failure_before_streaming_as_json(
    gateway: httpx.Client, fake_gemini, chapter, beginners, stack: Stack, stored
):
    fake_gemini.post("/_fake/config", json={"fail_next": [500, 500, 500]})
    failed = personalize(gateway, chapter["id"], beginners[0])
    assert failed.status_code == 502
    assert failed.json()["error"]["code"] == "llm_unavailable"
    assert stored(stack, chapter["id"]) == []
    assert personalize(gateway, chapter["id"], beginners[0]).json()["cached"] is False


def test_code_blocks_survive_personalization(
    gateway: httpx.Client, fake_gemini, beginners, stack: Stack, clean_cache
):
    code = "```python\nimport rclpy\nrclpy.init()\n```"
    formula = "$$\n\\tau = J^T F\n$$"
    source, path = "summary-code", "control.md"
    ingest(
        stack,
        source,
        {path: f"# Control\n\nStart ROS 2.\n\n{code}\n\nTorque:\n\n{formula}\n\nDone.\n"},
    )
    # A model that rewrites the prose, keeps one marker and forgets the other.
    fake_gemini.post(
        "/_fake/config",
        json={
            "default_reply": (
                "# Control\n\nFirst, start ROS 2 like this:\n\n[[CODE 1]]\n\nThat is all."
            ),
            "words_per_chunk": 1,
        },
    )
    events = parse_text(
        personalize(gateway, chapter_id_of(source, path), beginners[0], STREAM).text
    )
    assert events[-1].event == "done", events[-1]
    text = "".join(e.data["text"] for e in events if e.event == "token")
    assert code in text and formula in text
    assert text.index("like this") < text.index(code) < text.index("That is all")
    assert "[[CODE" not in text


def test_personalized_requires_a_signed_in_reader(gateway: httpx.Client, fake_gemini, chapter):
    anonymous = gateway.post(f"/api/summary/chapters/{chapter['id']}/personalized")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"
    forged = gateway.post(
        f"/api/summary/chapters/{chapter['id']}/personalized",
        headers={"authorization": "Bearer not-a-real-token", "x-user-id": "someone"},
    )
    assert forged.status_code == 401
    assert model_calls(fake_gemini) == []


def test_reader_without_profile_is_told_to_make_one(gateway: httpx.Client, fake_gemini, chapter):
    reader = new_reader(gateway)
    response = personalize(gateway, chapter["id"], reader)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "profile_required"
    assert model_calls(fake_gemini) == []


def test_unknown_chapter_personalized_is_404(gateway: httpx.Client, fake_gemini, beginners):
    response = personalize(gateway, "no-such-chapter", beginners[0])
    assert response.status_code == 404
    assert model_calls(fake_gemini) == []


def test_long_chapter_is_rewritten_in_parts_keeping_every_code_block(
    fake_gemini, long_chapter, beginners, replica_factory
):
    chapter = long_chapter
    budget = 6000
    small = replica_factory("summary-small-budget-2", SUMMARY_REWRITE_BUDGET_CHARS=str(budget))
    # A model that never writes the markers: the code must come back from the original.
    fake_gemini.post("/_fake/config", json={"default_reply": "Rewritten prose only."})
    with small.client() as client:
        response = client.post(
            f"/api/summary/chapters/{chapter['id']}/personalized",
            headers={"x-user-id": beginners[0].user_id},
        )
    assert response.status_code == 200, response.text
    text = response.json()["text"]
    calls = model_calls(fake_gemini)
    assert len(calls) >= 3
    assert all(len(c["prompt"]) < budget + 2500 for c in calls)
    originals = re.findall(r"^ *```.*?^ *```", chapter["text"], re.MULTILINE | re.DOTALL)
    assert originals
    for block in originals:
        assert block.strip() in text
