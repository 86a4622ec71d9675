"""An answer outlives its HTTP request: it is stored when the reader leaves, a reader who comes
back with Last-Event-ID gets the rest of the same answer (from the Redis log, on any worker),
and limits keep one reader from opening too many streams."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import redis as redis_sync

from lectern_dev.harness.chat import ask, resume, settled_answer
from lectern_dev.harness.polling import wait_until
from lectern_dev.harness.replicas import Replica, start_replica
from lectern_dev.harness.sse import parse
from lectern_dev.stack import Stack

QUESTION = "How do ROS 2 nodes talk to each other?"
LONG_REPLY = " ".join(f"word{i} [1]" if i % 10 == 0 else f"word{i}" for i in range(60)) + "."


def test_leaving_mid_answer_stores_what_was_produced_as_interrupted(
    chat: httpx.Client, fake: httpx.Client, book: dict
):
    fake.post(
        "/_fake/config",
        json={"default_reply": LONG_REPLY, "words_per_chunk": 2, "token_interval_ms": 300},
    )
    partial = ask(chat, {"message": QUESTION}, stop_after_tokens=2)
    headers = partial.guest
    message = settled_answer(chat, partial, headers)
    assert message["status"] == "interrupted"
    assert message["error"]["code"] == "interrupted"
    # What the reader saw was stored, and generation stopped well before the end.
    assert message["content"].startswith(partial.text) and len(partial.text) > 0
    assert len(message["content"]) < len(LONG_REPLY)
    assert message["sources"] == partial.one("sources")["sources"]

    # A reader coming back late still gets the produced rest and a terminal event.
    late = resume(chat, partial.meta["message_id"], last_event_id=partial.last.id, headers=headers)
    assert late.status == 200
    assert late.last.event == "error" and late.last.data["code"] == "interrupted"
    assert partial.text + late.text == message["content"]


def test_last_event_id_resumes_the_same_answer(chat: httpx.Client, fake: httpx.Client, book: dict):
    fake.post(
        "/_fake/config",
        json={"default_reply": LONG_REPLY, "words_per_chunk": 2, "token_interval_ms": 100},
    )
    first = ask(chat, {"message": QUESTION}, stop_after_tokens=3)
    headers = first.guest
    rest = resume(
        chat,
        first.meta["message_id"],
        last_event_id=first.last.id,
        headers={**headers, "accept-encoding": "gzip"},
    )
    assert rest.status == 200
    assert "content-encoding" not in rest.headers
    assert rest.events[0].id == first.last.id + 1
    assert [e.id for e in rest.events] == list(range(first.last.id + 1, rest.last.id + 1))
    assert rest.last.event == "done"
    assert first.text + rest.text == LONG_REPLY  # nothing lost, nothing repeated
    # One answer, not a new one: one model call, and the stored text is the streamed one.
    assert len(fake.get("/_fake/requests").json()["requests"]) == 1
    message = settled_answer(chat, first, headers)
    assert message["status"] == "complete" and message["content"] == LONG_REPLY
    # Resumed events arrived as they were produced, not in one buffered block.
    assert rest.arrived[-1] - rest.arrived[0] > 0.5


def test_a_finished_answer_replays_from_the_log(chat: httpx.Client, fake: httpx.Client, book: dict):
    answer = ask(chat, {"message": QUESTION})
    headers = answer.guest
    after_sources = resume(chat, answer.meta["message_id"], last_event_id=2, headers=headers)
    assert after_sources.events == answer.events[2:]
    everything = resume(chat, answer.meta["message_id"], last_event_id=None, headers=headers)
    assert [e.event for e in everything.events] == [e.event for e in answer.events]
    assert "guest_token" not in everything.meta  # the token is never kept in the log
    assert everything.meta["message_id"] == answer.meta["message_id"]


def test_resume_is_owner_only_and_validated(chat: httpx.Client, fake: httpx.Client, book: dict):
    answer = ask(chat, {"message": QUESTION})
    other = ask(chat, {"message": "Another guest's question about Gazebo"})
    message_id = answer.meta["message_id"]
    assert resume(chat, message_id, last_event_id=1, headers=other.guest).status == 404
    assert resume(chat, message_id, last_event_id=1).status == 404
    bad = resume(chat, message_id, last_event_id="abc", headers=answer.guest)
    assert bad.status == 422
    # The question's own id is not an answer with events.
    conversation = chat.get(
        f"/api/chat/conversations/{answer.meta['conversation_id']}", headers=answer.guest
    ).json()
    question_id = conversation["messages"][0]["id"]
    assert resume(chat, question_id, last_event_id=0, headers=answer.guest).status == 404


def test_a_reader_cannot_open_too_many_streams(
    chat: httpx.Client, fake: httpx.Client, book: dict, limits
):
    headers = ask(chat, {"message": QUESTION}).guest
    fake.post("/_fake/config", json={"ttft_ms": 1500})
    opened = []
    try:
        for _ in range(limits.open_streams):
            context = chat.stream(
                "POST", "/api/chat/stream", json={"message": QUESTION}, headers=headers
            )
            response = context.__enter__()
            opened.append(context)
            assert response.status_code == 200
            assert next(parse(response.iter_lines())).event == "meta"
        refused = ask(chat, {"message": QUESTION}, headers=headers)
        assert refused.status == 429
        assert refused.body["error"]["code"] == "too_many_streams"
        assert refused.headers["retry-after"]
        # Someone else is not affected.
        assert ask(chat, {"message": QUESTION}).status == 200
    finally:
        for context in opened:
            context.__exit__(None, None, None)


def test_one_answer_at_a_time_per_conversation(chat: httpx.Client, fake: httpx.Client, book: dict):
    first = ask(chat, {"message": QUESTION})
    headers = first.guest
    body = {"message": "Tell me more", "conversation_id": first.meta["conversation_id"]}
    fake.post("/_fake/config", json={"ttft_ms": 1500})
    with chat.stream("POST", "/api/chat/stream", json=body, headers=headers) as response:
        events = parse(response.iter_lines())
        assert next(events).event == "meta"
        busy = ask(chat, body, headers=headers)
        assert busy.status == 409
        assert busy.body["error"]["code"] == "conversation_busy"
        rest = list(events)
    assert rest[-1].event == "done"
    assert ask(chat, body, headers=headers).last.event == "done"


def test_resume_accepts_after_query_parameter(chat: httpx.Client, fake: httpx.Client, book: dict):
    answer = ask(chat, {"message": QUESTION})
    with chat.stream(
        "GET",
        f"/api/chat/messages/{answer.meta['message_id']}/events",
        params={"after": answer.events[-2].id},
        headers=answer.guest,
    ) as response:
        events = list(parse(response.iter_lines()))
    assert events == [answer.last]


@pytest.fixture(scope="module")
def second_replica(chat_stack: Stack) -> Iterator[Replica]:
    """Another chat process on the same PostgreSQL and Redis, as a second replica would be."""
    replica = start_replica(chat_stack, "chat", "chat-replica")
    yield replica
    replica.stop()


def test_an_answer_generated_by_one_replica_resumes_on_another(
    chat: httpx.Client, fake: httpx.Client, book: dict, second_replica: Replica
):
    fake.post(
        "/_fake/config",
        json={"default_reply": LONG_REPLY, "words_per_chunk": 2, "token_interval_ms": 100},
    )
    first = ask(chat, {"message": QUESTION}, stop_after_tokens=3)
    with second_replica.client(timeout=60.0) as replica:
        rest = resume(
            replica, first.meta["message_id"], last_event_id=first.last.id, headers=first.guest
        )
    assert rest.status == 200
    assert rest.events[0].id == first.last.id + 1 and rest.last.event == "done"
    assert first.text + rest.text == LONG_REPLY
    assert settled_answer(chat, first, first.guest)["status"] == "complete"


def test_an_expired_replay_log_is_410(
    chat: httpx.Client, fake: httpx.Client, book: dict, chat_stack: Stack
):
    answer = ask(chat, {"message": QUESTION})
    key = f"{chat_stack.config.redis_prefix}chat:events:{answer.meta['message_id']}"
    client = redis_sync.Redis.from_url(chat_stack.redis_url)
    try:
        assert client.delete(key) == 1  # as if its TTL had run out
    finally:
        client.close()
    gone = resume(chat, answer.meta["message_id"], last_event_id=0, headers=answer.guest)
    assert gone.status == 410
    assert gone.body["error"]["code"] == "replay_expired"


def test_a_finished_answers_log_is_kept_minutes_not_an_hour(
    chat: httpx.Client, fake: httpx.Client, book: dict, chat_stack: Stack
):
    """While an answer runs its replay log lives CHAT_REPLAY_TTL_S (an hour); once it ended,
    CHAT_REPLAY_DONE_TTL_S (120 s): a classroom's finished logs must not fill Redis."""
    fake.post("/_fake/config", json={"token_interval_ms": 150, "words_per_chunk": 1})
    client = redis_sync.Redis.from_url(chat_stack.redis_url)
    try:
        with chat.stream("POST", "/api/chat/stream", json={"message": QUESTION}) as response:
            lines = response.iter_lines()
            message_id = None
            for line in lines:
                if line.startswith("data:") and '"message_id"' in line:
                    message_id = json.loads(line[5:])["message_id"]
                if line == "event: token" and message_id:
                    break
            key = f"{chat_stack.config.redis_prefix}chat:events:{message_id}"
            wait_until(lambda: client.exists(key), 10, interval_s=0.05)
            running_ttl = client.ttl(key)
            for _ in lines:  # to the end of the answer
                pass
        wait_until(lambda: 0 < client.ttl(key) <= 120, 10, interval_s=0.1)
        assert running_ttl > 3000, running_ttl
    finally:
        client.close()
