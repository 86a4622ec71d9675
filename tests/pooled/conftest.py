"""Fixtures for the pooled-connection tests: a private PgBouncer in transaction mode (Neon's
pooled URL) in front of the test PostgreSQL, and a stack of our own whose every service (auth
included) reaches its database only through it. Checks read the database directly."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lectern_dev.harness.database import create_database, drop_database
from lectern_dev.harness.pgbouncer import PgBouncer
from lectern_dev.harness.services import gateway_client, routed
from lectern_dev.stack import Ports, Stack, StackConfig


@pytest.fixture(scope="session")
def admin_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        pytest.skip("needs DATABASE_URL: PgBouncer sits in front of a TCP PostgreSQL server")
    return url


@pytest.fixture(scope="session")
def pgbouncer(admin_url: str) -> Iterator[PgBouncer]:
    bouncer = PgBouncer(admin_url).start()
    yield bouncer
    bouncer.stop()


@pytest.fixture(scope="session")
def direct_url(admin_url: str) -> Iterator[str]:
    """The pooled stack's database, reached directly (for the checks)."""
    url = asyncio.run(create_database(admin_url))
    yield url
    asyncio.run(drop_database(admin_url, url))


@pytest.fixture(scope="session")
def stack(
    session_dir: Path, redis_prefix: str, pgbouncer: PgBouncer, direct_url: str
) -> Iterator[Stack]:
    """A stack whose services use the pooled URL only (DATABASE_POOLED, as a Neon `-pooler`
    host would imply), with the fake Gemini and rate limits out of the way of the bursts."""
    config = StackConfig(
        data_dir=session_dir / "pooled",
        ports=Ports.random(),
        database_url=pgbouncer.url(direct_url),
        redis_url=os.environ.get("REDIS_URL") or None,
        redis_prefix=f"{redis_prefix}pooled:",
        fake_gemini=True,
        extra_env={
            "DATABASE_POOLED": "true",
            "EMBEDDINGS_PROVIDER": "local",
            "RATE_AUTH_PER_MIN": "6000",
            "RATE_AUTH_BURST": "1000",
            "RATE_STREAM_PER_MIN": "100000",
            "RATE_STREAM_BURST": "10000",
            "RATE_API_PER_S": "10000",
            "RATE_API_BURST": "10000",
            "CHAT_MAX_OPEN_STREAMS": "50",
            "CHAT_MAX_OPEN_STREAMS_PER_ADDRESS": "50",
        },
    )
    stack = Stack(config).start()
    try:
        yield routed(stack)
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def gateway(stack: Stack) -> Iterator[httpx.Client]:
    """This folder's own: the root conftest's session `gateway` keeps the stack it was first
    made with, so after another folder's tests the pooled tests would have asked the main
    stack (they passed alone and failed in the whole suite)."""
    with gateway_client(stack) as client:
        yield client
