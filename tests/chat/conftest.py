"""Chat test fixtures: a stack of our own with the fake Gemini, short model timeouts (so stall
tests end quickly) and the gateway's stream rate limit raised (every test streams from one
address); the sample book ingested once; a client on the gateway and one on the fake."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from lectern_dev.harness.books import ingest_book
from lectern_dev.harness.services import fake_gemini_client, gateway_client, routed
from lectern_dev.stack import Stack


@dataclass(frozen=True)
class ChatLimits:
    """The chat stacks' timeouts and limits, short so that the tests of each end quickly."""

    first_token_timeout_s: float = 3.0
    between_tokens_timeout_s: float = 2.0
    detach_grace_s: float = 2.0
    open_streams: int = 3
    stream_max_s: float = 15.0  # no answer may run longer (test_lifetime.py)
    sweep_interval_s: float = 0.5

    def env(self) -> dict[str, str]:
        return {
            # Queries are embedded locally, so failures queued on the fake reach the model call.
            "EMBEDDINGS_PROVIDER": "local",
            "RATE_STREAM_PER_MIN": "100000",
            "RATE_STREAM_BURST": "10000",
            "RATE_API_PER_S": "10000",
            "RATE_API_BURST": "10000",
            "GEMINI_FIRST_TOKEN_TIMEOUT_S": str(self.first_token_timeout_s),
            "GEMINI_BETWEEN_TOKENS_TIMEOUT_S": str(self.between_tokens_timeout_s),
            "GEMINI_BACKOFF_BASE_S": "0.05",
            "CHAT_DETACH_GRACE_S": str(self.detach_grace_s),
            "CHAT_MAX_OPEN_STREAMS": str(self.open_streams),
            "CHAT_STREAM_MAX_S": str(self.stream_max_s),
            "CHAT_SWEEP_INTERVAL_S": str(self.sweep_interval_s),
        }


@pytest.fixture(scope="session")
def limits() -> ChatLimits:
    return ChatLimits()


@pytest.fixture(scope="session")
def make_chat_stack(make_stack: Callable[..., Stack], limits: ChatLimits) -> Callable[..., Stack]:
    """make_chat_stack(name, ...): a stack with the chat limits, once the gateway routes."""

    def make(name: str, **overrides: Any) -> Stack:
        extra_env = {**limits.env(), **overrides.pop("extra_env", {})}
        return routed(make_stack(name, extra_env=extra_env, **overrides))

    return make


@pytest.fixture(scope="session")
def chat_stack(make_chat_stack: Callable[..., Stack]) -> Stack:
    return make_chat_stack("chat", fake_gemini=True)


@pytest.fixture(scope="session")
def book(chat_stack: Stack) -> dict:
    """The sample book, ingested once into the chat stack (its ingest summary)."""
    return ingest_book(chat_stack)


@pytest.fixture(scope="session")
def stack(chat_stack: Stack) -> Stack:
    """Here the shared fixtures' names (`stack`, `gateway`, `fake_gemini`) are the chat stack's.
    Each is defined again in this folder: a session fixture of the root conftest keeps the
    value it was first made with, so overriding `stack` alone would hand the chat tests the
    main stack's gateway whenever another folder's tests ran first."""
    return chat_stack


@pytest.fixture(scope="session")
def gateway(chat_stack: Stack) -> Iterator[httpx.Client]:
    with gateway_client(chat_stack) as client:
        yield client


@pytest.fixture
def fake_gemini(chat_stack: Stack) -> Iterator[httpx.Client]:
    """Control the chat stack's fake Gemini; reset around each test."""
    with fake_gemini_client(chat_stack) as client:
        yield client


@pytest.fixture(scope="session")
def chat(gateway: httpx.Client) -> httpx.Client:
    """A client on the chat stack's gateway."""
    return gateway


@pytest.fixture
def fake(fake_gemini: httpx.Client) -> httpx.Client:
    """The chat stack's fake Gemini, reset around each test."""
    return fake_gemini
