"""The circuit breaker through a real chat process: with retrieval stopped answering (a socket
that takes connections and never replies, as a frozen process does), the first answers wait
out the search timeout, and once the breaker opened the next fail at once, still as a
retryable `retrieval_unavailable` error event."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from lectern_dev.harness.chat import collect
from lectern_dev.harness.replicas import wait_for_http
from lectern_dev.harness.services import InternalAuth
from lectern_dev.stack import Process, Stack, free_port

TIMEOUT_S = 2.0
FAILURES = 2


@pytest.fixture
def silent_retrieval() -> Iterator[str]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # connections complete in the backlog and are never answered
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
def chat_on_silent_retrieval(stack: Stack, silent_retrieval: str) -> Iterator[httpx.Client]:
    port = free_port()
    process = Process(
        "chat-breaker",
        [sys.executable, "-m", "lectern_chat"],
        env={
            **stack.env_of("chat"),
            "CHAT_PORT": str(port),
            "RETRIEVAL_URL": silent_retrieval,
            "CHAT_RETRIEVAL_TIMEOUT_S": str(TIMEOUT_S),
            "INTERNAL_BREAKER_FAILURES": str(FAILURES),
            "INTERNAL_BREAKER_COOLDOWN_S": "60",  # no probe during the test
        },
        log=stack.logs / "chat-breaker.log",
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/health", process)  # /ready is 503: its retrieval is away
        with httpx.Client(base_url=url, auth=InternalAuth(stack), timeout=30) as client:
            yield client
    finally:
        process.stop()


def timed_answer(client: httpx.Client) -> tuple[float, dict]:
    started = time.monotonic()
    with client.stream("POST", "/api/chat/stream", json={"message": "What is an IMU?"}) as r:
        answer = collect(r)
    assert answer.last.event == "error", [e.event for e in answer.events]
    return time.monotonic() - started, answer.last.data


def test_answers_fail_fast_once_the_breaker_opened(chat_on_silent_retrieval: httpx.Client):
    slow = [timed_answer(chat_on_silent_retrieval) for _ in range(FAILURES)]
    for took, error in slow:
        assert took >= TIMEOUT_S * 0.9, slow
        assert error["code"] == "retrieval_unavailable" and error["retryable"] is True
    fast = [timed_answer(chat_on_silent_retrieval) for _ in range(3)]
    for took, error in fast:
        assert took < 0.5 * TIMEOUT_S, fast
        assert error["code"] == "retrieval_unavailable" and error["retryable"] is True
    ready = chat_on_silent_retrieval.get("/ready")
    assert ready.status_code == 503 and ready.json()["dependencies"]["retrieval"]["ok"] is False
