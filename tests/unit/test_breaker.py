"""The circuit breaker alone, on a fake clock, and in front of a real InternalClient talking to
a port nobody listens on: open after N failures in a row, fail fast during the cool-down, one
probe after it (half-open), closed again by its success or opened again by its failure."""

from __future__ import annotations

import asyncio
import socket

import pytest

from lectern_common.breaker import CircuitBreaker, State
from lectern_common.http import InternalClient, ServiceUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_n_failures_in_a_row_and_half_opens_after_the_cooldown():
    clock = Clock()
    breaker = CircuitBreaker("retrieval", failures=3, cooldown_s=10, max_cooldown_s=40, clock=clock)
    breaker.failed()
    breaker.failed()
    breaker.succeeded()  # a success in between starts the count again
    breaker.failed()
    breaker.failed()
    assert breaker.allow() and breaker.state is State.CLOSED
    breaker.failed()
    assert breaker.state is State.OPEN and not breaker.allow()
    assert breaker.retry_after_s() == 10
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.allow() and breaker.state is State.HALF_OPEN
    assert not breaker.allow()  # one probe at a time
    breaker.failed()  # the probe failed: open for twice as long
    assert breaker.state is State.OPEN and not breaker.allow()
    assert breaker.retry_after_s() == 20
    clock.now += 19.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.allow()
    breaker.succeeded()
    assert breaker.state is State.CLOSED and breaker.allow() and breaker.allow()


def test_the_cooldown_doubles_up_to_the_longest_and_starts_short_again():
    clock = Clock()
    breaker = CircuitBreaker(
        "retrieval", failures=1, cooldown_s=0.5, max_cooldown_s=10, clock=clock
    )
    breaker.failed()
    probes = []
    for _ in range(8):  # down for good: a probe after each cool-down, each failing
        clock.now += breaker.cooldown_s
        assert breaker.allow()
        probes.append(breaker.cooldown_s)
        breaker.failed()
    assert probes == [0.5, 1, 2, 4, 8, 10, 10, 10]
    clock.now += 10
    assert breaker.allow()
    breaker.succeeded()
    breaker.failed()  # a new outage starts with the short cool-down again
    assert breaker.state is State.OPEN and breaker.cooldown_s == 0.5


def test_a_service_restarted_in_3_s_is_asked_again_within_4():
    """The fault suite's sigkill-retrieval case: the supervisor had retrieval back in 3.4 s;
    with a fixed 10 s cool-down chat kept refusing answers until 10 s after the kill."""
    clock = Clock()
    breaker = CircuitBreaker("retrieval", failures=5, clock=clock)  # the defaults
    fell = clock.now
    for _ in range(5):
        breaker.failed()
    back = fell + 3.0
    while True:
        clock.now += 0.05  # a reader asks every 50 ms
        if breaker.allow():
            if clock.now >= back:
                breaker.succeeded()
                break
            breaker.failed()
    assert breaker.state is State.CLOSED and clock.now - fell <= 4.0


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_the_client_fails_fast_while_open_then_probes():
    client = InternalClient(
        name="retrieval",
        base_url=f"http://127.0.0.1:{closed_port()}",
        token="t" * 32,
        retries=0,
        breaker_failures=2,
        breaker_cooldown_s=0.3,
    )
    try:
        for _ in range(2):
            with pytest.raises(ServiceUnavailable) as refused:
                await client.get("/x")
            assert refused.value.reason == "ClientConnectorError"
        with pytest.raises(ServiceUnavailable) as fast:
            await client.get("/x")
        assert fast.value.reason == "circuit_open"
        assert fast.value.status == 503 and fast.value.code == "dependency_unavailable"
        assert fast.value.headers and int(fast.value.headers["Retry-After"]) >= 1
        await asyncio.sleep(0.35)
        with pytest.raises(ServiceUnavailable) as probe:
            await client.get("/x")
        assert probe.value.reason == "ClientConnectorError"  # the probe went out
        assert client.breaker.state is State.OPEN
    finally:
        await client.aclose()


def test_a_call_its_caller_cancelled_does_not_count_but_frees_the_probe():
    clock = Clock()
    breaker = CircuitBreaker("profile", failures=2, cooldown_s=10, clock=clock)
    for _ in range(5):
        breaker.abandoned()  # cancelled by the caller: the dependency did nothing wrong
    assert breaker.state is State.CLOSED and breaker.failures == 0
    breaker.failed()
    breaker.failed()
    clock.now += 10
    assert breaker.allow() and breaker.state is State.HALF_OPEN
    breaker.abandoned()  # the probe was cancelled: another call may probe at once
    assert breaker.allow() and breaker.state is State.HALF_OPEN


async def test_cancelled_calls_never_open_the_breaker_on_a_healthy_service():
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)  # answers nothing before the caller gives up
        writer.close()

    server = await asyncio.start_server(slow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = InternalClient(
        name="profile", base_url=f"http://127.0.0.1:{port}", token="t" * 32, retries=0
    )
    try:
        for _ in range(8):
            call = asyncio.ensure_future(client.get("/internal/profiles/u1"))
            await asyncio.sleep(0.05)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
        assert client.breaker.state is State.CLOSED
    finally:
        await client.aclose()
        server.close()
