"""Guests cannot escape the open-stream cap by asking without a token (each first question is
a new owner): the cap also holds per client address, as the gateway's forwardAuth answer names
it (`X-Rate-Key: ip:<address>`, a header the gateway drops from what a client sends)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import httpx
import pytest

from lectern_dev.harness.books import ingest_book
from lectern_dev.harness.chat import ask
from lectern_dev.harness.polling import wait_until
from lectern_dev.harness.readers import new_reader
from lectern_dev.harness.services import fake_gemini_client, gateway_client, routed
from lectern_dev.harness.sse import parse
from lectern_dev.stack import Stack

QUESTION = "What does an IMU measure on a walking humanoid?"
PER_ADDRESS = 4


@pytest.fixture(scope="module")
def cap_stack(make_stack: Callable[..., Stack]) -> Stack:
    stack = make_stack(
        "stream-cap",
        fake_gemini=True,
        extra_env={
            "EMBEDDINGS_PROVIDER": "local",
            "RATE_STREAM_PER_MIN": "100000",
            "RATE_STREAM_BURST": "10000",
            "CHAT_MAX_OPEN_STREAMS_PER_ADDRESS": str(PER_ADDRESS),
        },
    )
    ingest_book(routed(stack))
    return stack


@pytest.fixture(scope="module")
def gateway(cap_stack: Stack) -> Iterator[httpx.Client]:
    with gateway_client(cap_stack, timeout=60.0) as client:
        yield client


@pytest.fixture
def fake(cap_stack: Stack) -> Iterator[httpx.Client]:
    with fake_gemini_client(cap_stack) as client:
        yield client


def test_new_guests_from_one_address_share_a_cap(gateway: httpx.Client, fake: httpx.Client):
    fake.post("/_fake/config", json={"ttft_ms": 4000})  # the answers stay open meanwhile
    reader = new_reader(gateway)
    with contextlib.ExitStack() as open_streams:
        for _ in range(PER_ADDRESS):
            # Each a guest without a token: a new owner every time.
            response = open_streams.enter_context(
                gateway.stream("POST", "/api/chat/stream", json={"message": QUESTION})
            )
            assert response.status_code == 200
            assert next(parse(response.iter_lines())).event == "meta"
        refused = ask(gateway, {"message": QUESTION})
        assert refused.status == 429, refused.events
        assert refused.body["error"]["code"] == "too_many_streams"
        assert int(refused.headers["retry-after"]) > 0
        # A client cannot name another address: the gateway sets the header itself.
        spoofed = ask(gateway, {"message": QUESTION}, headers={"x-rate-key": "ip:203.0.113.9"})
        assert spoofed.status == 429
        # A signed-in reader is counted as themselves, not by the guests' address.
        fake.post("/_fake/config", json={"ttft_ms": 0})
        assert ask(gateway, {"message": QUESTION}, headers=reader.headers).last.event == "done"
    # Once those answers ended (their readers left), a guest from that address is served again.
    wait_until(
        lambda: ask(gateway, {"message": QUESTION}).status == 200,
        30,
        interval_s=0.5,
        message="the address's slots were never given back",
    )
