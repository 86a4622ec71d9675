"""Chat test fixtures: a stack of our own with the fake Gemini, short model timeouts (so stall
tests end quickly) and the gateway's stream rate limit raised (every test streams from one
address); the sample book ingested once; a client on the gateway and one on the fake."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from lectern_dev.stack import Stack
from tests.support.book import ingest_book
from tests.support.stack import fake_gemini_client

FIRST_TOKEN_TIMEOUT_S = 3.0
BETWEEN_TOKENS_TIMEOUT_S = 2.0
DETACH_GRACE_S = 2.0
OPEN_STREAMS = 3
STREAM_MAX_S = 15  # no answer may run longer (tests/chat/test_lifetime.py)
SWEEP_INTERVAL_S = 0.5

CHAT_ENV = {
    # Queries are embedded locally, so failures queued on the fake reach the model call.
    "EMBEDDINGS_PROVIDER": "local",
    "RATE_STREAM_PER_MIN": "100000",
    "RATE_STREAM_BURST": "10000",
    "RATE_API_PER_S": "10000",
    "RATE_API_BURST": "10000",
    "GEMINI_FIRST_TOKEN_TIMEOUT_S": str(FIRST_TOKEN_TIMEOUT_S),
    "GEMINI_BETWEEN_TOKENS_TIMEOUT_S": str(BETWEEN_TOKENS_TIMEOUT_S),
    "GEMINI_BACKOFF_BASE_S": "0.05",
    "CHAT_DETACH_GRACE_S": str(DETACH_GRACE_S),
    "CHAT_MAX_OPEN_STREAMS": str(OPEN_STREAMS),
    "CHAT_STREAM_MAX_S": str(STREAM_MAX_S),
    "CHAT_SWEEP_INTERVAL_S": str(SWEEP_INTERVAL_S),
}


def routed(stack: Stack, timeout: float = 30.0) -> Stack:
    """The stack once its gateway routes requests: Traefik answers /ping before its file
    provider has loaded the routes, and a request in between gets a bare 404."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=stack.gateway_url, timeout=2.0) as client:
        for path in ("/api/chat/health", "/api/retrieval/health"):
            while client.get(path).status_code != 200:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the gateway does not route {path}")
                time.sleep(0.1)
    return stack


@pytest.fixture(scope="session")
def chat_stack(make_stack: Callable[..., Stack]) -> Stack:
    return routed(make_stack("chat", fake_gemini=True, extra_env=CHAT_ENV))


@pytest.fixture(scope="session")
def book(chat_stack: Stack) -> dict:
    """The sample book, ingested once into the chat stack (its ingest summary)."""
    return ingest_book(chat_stack)


@pytest.fixture(scope="session")
def chat(chat_stack: Stack) -> Iterator[httpx.Client]:
    """A client on the chat stack's gateway."""
    with httpx.Client(base_url=chat_stack.gateway_url, timeout=30.0) as client:
        yield client


@pytest.fixture
def fake(chat_stack: Stack) -> Iterator[httpx.Client]:
    """The chat stack's fake Gemini, reset around each test."""
    with fake_gemini_client(chat_stack) as client:
        yield client
