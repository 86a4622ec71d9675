"""Test fixtures: one real stack per test session (PostgreSQL, Redis, Traefik, the services,
Better Auth and the fake Gemini), on random ports, with its own database and Redis prefix.

PostgreSQL and Redis come from DATABASE_URL / REDIS_URL when set (a fresh database is created
and dropped), otherwise embedded servers are started in a temporary folder.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis as redis_sync

from lectern_dev.stack import (Ports, Stack, StackConfig, create_database, drop_database)

SHARED = Path(__file__).resolve().parents[2] / "shared"
if not SHARED.exists():  # a clone elsewhere: ../shared beside the repository
    SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lectern")


@pytest.fixture(scope="session")
def database_url() -> Iterator[str | None]:
    """A fresh database on the server of DATABASE_URL, or None (the stack embeds one)."""
    admin = os.environ.get("DATABASE_URL")
    if not admin:
        yield None
        return
    url = asyncio.run(create_database(admin))
    yield url
    asyncio.run(drop_database(admin, url))


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    prefix = f"lectern-test-{uuid.uuid4().hex[:8]}:"
    yield prefix
    if url := os.environ.get("REDIS_URL"):
        client = redis_sync.Redis.from_url(url)
        for key in client.scan_iter(match=prefix + "*", count=1000):
            client.delete(key)
        client.close()


@pytest.fixture(scope="session")
def make_stack(session_dir: Path, database_url: str | None, redis_prefix: str
               ) -> Iterator[Callable[..., Stack]]:
    """Start an extra stack with other settings: make_stack(name, extra_env=..., ...).
    Stacks made here share the session's database and Redis, and stop at session end."""
    stacks: list[Stack] = []
    # One database means one Better Auth: it keeps its JWKS private key in the shared `auth`
    # schema, encrypted with this secret, so every stack of the session must use the same one.
    auth_secret = secrets.token_urlsafe(32)

    def make(name: str, **overrides) -> Stack:
        config = StackConfig(data_dir=session_dir / name, ports=Ports.random(),
                             database_url=database_url,
                             redis_url=os.environ.get("REDIS_URL") or None,
                             redis_prefix=redis_prefix, **overrides)
        stack = Stack(config)
        stack.secrets["BETTER_AUTH_SECRET"] = auth_secret
        stack.start()
        stacks.append(stack)
        return stack

    yield make
    for stack in reversed(stacks):
        stack.stop()


@pytest.fixture(scope="session")
def stack(make_stack: Callable[..., Stack]) -> Stack:
    """The main test stack, with the fake Gemini as its language model. Retrieval embeds with
    the local model, so errors queued on the fake Gemini reach the LLM call they are meant for."""
    return make_stack("main", fake_gemini=True, extra_env={"EMBEDDINGS_PROVIDER": "local"})


@pytest.fixture(scope="session")
def gateway(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=30.0) as client:
        yield client


@pytest.fixture
def fake_gemini(stack: Stack) -> Iterator[httpx.Client]:
    """Control the fake Gemini (POST /_fake/config, GET /_fake/requests); reset around each test."""
    with httpx.Client(base_url=stack.config.url("fake_gemini"), timeout=10.0) as client:
        client.post("/_fake/reset")
        yield client
        client.post("/_fake/reset")

