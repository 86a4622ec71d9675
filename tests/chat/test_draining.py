"""SIGTERM during an answer: the chat process turns draining (/ready 503, new answers refused),
lets the open answer finish within its grace period, or ends it with a retryable `error` after
storing what was produced, then exits; no stream is cut without an event. A gateway balancing
over several replicas takes the draining one out (its health check), so new questions go to
the others and none is refused."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from lectern_dev.harness.chat import Answer, ask, settled_answer
from lectern_dev.harness.gateways import start_gateway
from lectern_dev.harness.replicas import Replica, start_replica
from lectern_dev.harness.sse import parse
from lectern_dev.stack import Stack

QUESTION = "What does an IMU measure on a walking humanoid?"
NOTICE_S = 1.5


def slow_reply(fake: httpx.Client, *, words: int, interval_ms: int) -> None:
    fake.post(
        "/_fake/config",
        json={
            "default_reply": " ".join(f"word{i}" for i in range(words)) + " [1].",
            "words_per_chunk": 1,
            "token_interval_ms": interval_ms,
        },
    )


@pytest.fixture
def draining_replica(request: pytest.FixtureRequest, stack: Stack, book: dict) -> Iterator[Replica]:
    grace_s = request.param
    replica = start_replica(
        stack,
        "chat",
        f"chat-drain-{grace_s}",
        env={"SHUTDOWN_GRACE_S": str(grace_s), "DRAIN_NOTICE_S": str(NOTICE_S)},
    )
    yield replica
    replica.stop()


def answer_through_sigterm(replica: Replica) -> tuple[Answer, float, list[int]]:
    """Ask, send SIGTERM after the first token, read the stream to its end; the answer, how
    long after the signal the process exited, and what /ready and a new question got while
    it drained."""
    with replica.client(timeout=60) as client:
        with client.stream("POST", "/api/chat/stream", json={"message": QUESTION}) as response:
            assert response.status_code == 200
            answer = Answer(status=200, headers=response.headers)
            events = parse(response.iter_lines())
            for event in events:
                answer.events.append(event)
                answer.arrived.append(time.monotonic())
                if event.event == "token":
                    break
            signalled = time.monotonic()
            replica.process.popen.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            during = [client.get("/ready").status_code]
            refused = client.post("/api/chat/stream", json={"message": QUESTION})
            during.append(refused.status_code)
            assert refused.headers["retry-after"]
            for event in events:
                answer.events.append(event)
                answer.arrived.append(time.monotonic())
    replica.process.popen.wait(60)
    return answer, time.monotonic() - signalled, during


@pytest.mark.parametrize("draining_replica", [8], indirect=True)
def test_an_answer_shorter_than_the_grace_completes(
    draining_replica: Replica, fake: httpx.Client, gateway: httpx.Client
):
    slow_reply(fake, words=20, interval_ms=100)  # about 2 s of tokens
    answer, exited_after, during = answer_through_sigterm(draining_replica)
    assert during == [503, 503]
    assert answer.last.event == "done", [e.event for e in answer.events]
    assert exited_after < 8 + NOTICE_S + 5
    stored = settled_answer(gateway, answer, answer.guest)
    assert stored["status"] == "complete" and "word19" in stored["content"]


@pytest.mark.parametrize("draining_replica", [2], indirect=True)
def test_an_answer_longer_than_the_grace_ends_with_a_retryable_error_and_is_stored(
    draining_replica: Replica, fake: httpx.Client, gateway: httpx.Client
):
    slow_reply(fake, words=200, interval_ms=100)  # about 20 s of tokens
    answer, exited_after, during = answer_through_sigterm(draining_replica)
    assert during == [503, 503]
    assert answer.last.event == "error", [e.event for e in answer.events]
    assert answer.last.data["code"] == "shutting_down"
    assert answer.last.data["retryable"] is True
    assert exited_after < 2 + NOTICE_S + 5
    stored = settled_answer(gateway, answer, answer.guest)
    assert stored["status"] == "interrupted"
    assert stored["content"].startswith(answer.text[:20]) and len(stored["content"]) > 0


def test_a_gateway_over_two_replicas_takes_the_draining_one_out(
    stack: Stack, book: dict, fake: httpx.Client, gateway: httpx.Client
):
    """Two chat replicas behind a gateway (CHAT_URLS): one gets SIGTERM while it streams an
    answer. That answer completes; from ~2 s after the signal (the 1 s health check and its
    1 s timeout) every new question through the gateway is answered by the other replica, to
    its end, while the first still drains. Without the check, half would reach the draining
    replica and be refused (503) or find it gone (502)."""
    notice_s, grace_s = 6.0, 10.0
    env = {"SHUTDOWN_GRACE_S": str(grace_s), "DRAIN_NOTICE_S": str(notice_s)}
    draining = start_replica(stack, "chat", "chat-lb-a", env=env)
    other = start_replica(stack, "chat", "chat-lb-b", env=env)
    balancer = start_gateway(stack, "gateway-lb", env={"CHAT_URLS": f"{draining.url},{other.url}"})
    try:
        slow_reply(fake, words=40, interval_ms=100)  # about 4 s of tokens
        with httpx.Client(base_url=balancer.url, timeout=30) as through:
            # Both replicas in the rotation first (each answers in turn).
            for _ in range(4):
                assert through.get("/api/chat/ready").status_code == 200
            with (
                draining.client(timeout=60) as direct,
                direct.stream("POST", "/api/chat/stream", json={"message": QUESTION}) as response,
            ):
                events = parse(response.iter_lines())
                for event in events:
                    if event.event == "token":
                        break
                draining.process.popen.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                time.sleep(2.5)
                fake.post(
                    "/_fake/config", json={"default_reply": "Short [1].", "token_interval_ms": 0}
                )
                asked = [ask(through, {"message": QUESTION}) for _ in range(6)]
                asked_within = time.monotonic() - signalled
                last = None
                for event in events:
                    last = event
            assert asked_within < notice_s, "the questions must be asked while it still drains"
            assert [a.status for a in asked] == [200] * 6, [a.body for a in asked]
            assert all(a.last.event == "done" for a in asked), [a.last for a in asked]
            assert last is not None and last.event == "done", last
        draining.process.popen.wait(60)
    finally:
        balancer.stop()
        other.stop()
        draining.stop()
