"""An answer's life has an end: a model that keeps talking is cut off at CHAT_STREAM_MAX_S,
and an answer whose worker died before storing it (still `streaming` long after) is marked
failed by the sweeper, so conversations never show an answer streaming forever."""

from __future__ import annotations

import time
import uuid

import httpx

from lectern_dev.harness.chat import ask, messages, stored_answer
from lectern_dev.harness.database import run_sql
from lectern_dev.harness.polling import wait_until
from lectern_dev.stack import Stack

QUESTION = "What does an IMU measure on a walking humanoid?"


def test_a_model_that_never_stops_is_cut_off_at_the_limit_and_stored(
    chat: httpx.Client, fake: httpx.Client, book: dict, limits
):
    # A chunk every second (under the between-tokens timeout) for far longer than the limit.
    fake.post(
        "/_fake/config",
        json={
            "token_interval_ms": 1000,
            "words_per_chunk": 2,
            "default_reply": "a topic carries messages " * 20,
        },
    )
    started = time.monotonic()
    answer = ask(chat, {"message": QUESTION})
    elapsed = time.monotonic() - started
    assert answer.last.event == "error"
    error = answer.one("error")
    assert error["code"] == "answer_too_long" and error["retryable"] is False
    assert answer.named("token")  # what came before the limit was streamed...
    # Not before the limit (how soon after it: bench/timeouts_bench.py).
    assert elapsed >= limits.stream_max_s - 0.5
    stored = stored_answer(chat, answer, answer.guest)
    assert stored["status"] == "failed" and stored["content"] == answer.text  # ...and kept


def _add_answer(database_url: str, conversation_id: str, *, age_s: float) -> str:
    message_id = str(uuid.uuid4())
    run_sql(
        database_url,
        "INSERT INTO chat.messages (id, conversation_id, role, status, created_at)"
        " VALUES ($1, $2, 'assistant', 'streaming', now() - make_interval(secs => $3))",
        uuid.UUID(message_id),
        uuid.UUID(conversation_id),
        age_s,
    )
    return message_id


def test_an_answer_left_streaming_by_a_dead_worker_is_marked_failed(
    chat: httpx.Client, chat_stack: Stack, fake: httpx.Client, book: dict
):
    answer = ask(chat, {"message": QUESTION})
    conversation_id, headers = answer.meta["conversation_id"], answer.guest
    assert chat_stack.database_url
    # As a worker that died mid-answer leaves it: still streaming an hour later.
    dead = _add_answer(chat_stack.database_url, conversation_id, age_s=3600)
    live = _add_answer(chat_stack.database_url, conversation_id, age_s=1)

    def status_of(message_id: str) -> dict:
        return next(m for m in messages(chat, conversation_id, headers) if m["id"] == message_id)

    swept = wait_until(
        lambda: (m := status_of(dead))["status"] != "streaming" and m,
        10,
        interval_s=0.2,
        message="the sweeper never settled the dead answer",
    )
    assert swept["status"] == "failed" and swept["finish_reason"] == "stream_lost"
    assert swept["error"]["code"] == "stream_lost" and swept["error"]["retryable"] is True
    assert status_of(live)["status"] == "streaming"  # a young one is left alone
