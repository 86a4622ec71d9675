"""Test fixtures: one real stack per test session (PostgreSQL, Redis, Traefik, the services,
Better Auth and the fake Gemini), on random ports, with its own database and Redis prefix.

PostgreSQL and Redis come from DATABASE_URL / REDIS_URL when set (a fresh database is created
and dropped), otherwise embedded servers are started in a temporary folder.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis as redis_sync

from lectern_dev.harness.database import create_database, drop_database
from lectern_dev.harness.services import fake_gemini_client, gateway_client
from lectern_dev.stack import Ports, Stack, StackConfig

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
def make_stack(session_dir: Path, redis_prefix: str) -> Iterator[Callable[..., Stack]]:
    """Start a stack: make_stack(name, extra_env=..., ...). Each stack gets its own database
    (a fresh one on the server of DATABASE_URL, or an embedded server in its folder) and its
    own Redis prefix, so stacks never see each other's data; all stop at session end."""
    admin = os.environ.get("DATABASE_URL")
    stacks: list[Stack] = []
    databases: list[str] = []

    def make(name: str, **overrides) -> Stack:
        # Every test signs readers up from 127.0.0.1: a production-sized per-address limit on
        # /api/auth would only make the suite wait. test_gateway_limits.py checks the limits.
        overrides["extra_env"] = {
            "RATE_AUTH_PER_MIN": "6000",
            "RATE_AUTH_BURST": "1000",
            "RATE_SIGN_PER_MIN": "6000",
            "RATE_SIGN_BURST": "1000",
            # A session keeps ~20 stacks of 4-5 services open on one PostgreSQL (100
            # connections), and each stack's status boards poll every service's checks every
            # 10 s: a burst's or a poll's connection must not stay behind (CI ran out at 3 s).
            "DATABASE_POOL_IDLE_S": "1",
            # and chat's and retrieval's pools, opened whole at start-up in production, start
            # with one connection here (a pool of 10 per worker in every stack would not fit).
            "DATABASE_POOL_MIN": "1",
            **overrides.get("extra_env", {}),
        }
        database = asyncio.run(create_database(admin)) if admin else None
        if database:
            databases.append(database)
        config = StackConfig(
            data_dir=session_dir / name,
            ports=Ports.random(),
            database_url=database,
            redis_url=os.environ.get("REDIS_URL") or None,
            redis_prefix=f"{redis_prefix}{name}:",
            **overrides,
        )
        stack = Stack(config).start()
        stacks.append(stack)
        return stack

    yield make
    for stack in reversed(stacks):
        stack.stop()
    for database in databases:
        asyncio.run(drop_database(admin, database))


@pytest.fixture(scope="session")
def stack(make_stack: Callable[..., Stack]) -> Stack:
    """The main test stack, with the fake Gemini as its language model. Retrieval embeds with
    the local model, so errors queued on the fake Gemini reach the LLM call they are meant for."""
    return make_stack("main", fake_gemini=True, extra_env={"EMBEDDINGS_PROVIDER": "local"})


@pytest.fixture(scope="session")
def gateway(stack: Stack) -> Iterator[httpx.Client]:
    with gateway_client(stack) as client:
        yield client


@pytest.fixture
def fake_gemini(stack: Stack) -> Iterator[httpx.Client]:
    """Control the fake Gemini (POST /_fake/config, GET /_fake/requests); reset around each test."""
    with fake_gemini_client(stack) as client:
        yield client
