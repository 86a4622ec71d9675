"""The pools of the services on every answer's path are opened at start-up and kept: chat's and
retrieval's PostgreSQL pools whole, chat's first Redis connections. A classroom's burst then
does not connect in it, and what each process holds does not climb with the day's peak (the
soak's pass mark, docs/reliability.md). Against the real PostgreSQL and Redis of the run."""

from __future__ import annotations

import asyncio
import os
import uuid

import asyncpg
import pytest
from pydantic import ValidationError
from redis import asyncio as redis_async

from lectern_chat.settings import ChatSettings
from lectern_common.stores import open_postgres, open_redis
from lectern_profile.settings import ProfileSettings
from lectern_retrieval.settings import RetrievalSettings
from lectern_summary.settings import SummarySettings

REDIS_URL = os.environ.get("REDIS_URL")


@pytest.mark.parametrize(
    ("cls", "floor"),
    [(ChatSettings, 10), (RetrievalSettings, 10), (ProfileSettings, 1), (SummarySettings, 1)],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_the_pool_floor_of_each_service(
    monkeypatch: pytest.MonkeyPatch, cls: type, floor: int
) -> None:
    monkeypatch.delenv("DATABASE_POOL_MIN", raising=False)
    monkeypatch.delenv("DATABASE_POOL_MAX", raising=False)
    assert cls().database_pool_floor == floor
    monkeypatch.setenv("DATABASE_POOL_MAX", "4")  # a smaller pool: still opened whole
    assert cls().database_pool_floor == min(floor, 4)
    monkeypatch.setenv("DATABASE_POOL_MIN", "2")
    assert cls().database_pool_floor == 2
    monkeypatch.setenv("DATABASE_POOL_MIN", "5")
    with pytest.raises(ValidationError, match="DATABASE_POOL_MIN"):
        cls()


def test_a_redis_floor_above_its_ceiling_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAT_REDIS_MIN_CONNECTIONS", "64")
    monkeypatch.setenv("CHAT_REDIS_MAX_CONNECTIONS", "16")
    with pytest.raises(ValidationError, match="CHAT_REDIS_MIN_CONNECTIONS"):
        ChatSettings()


async def connections_named(admin: asyncpg.Connection, name: str) -> int:
    return await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
        " AND datname = current_database()",  # other stacks' chats share the server
        name,
    )


async def test_chats_postgres_pool_is_open_whole_and_stays_so(
    monkeypatch: pytest.MonkeyPatch, database_url: str | None
) -> None:
    if not database_url:
        pytest.skip("needs DATABASE_URL")
    from lectern_chat.app import MIGRATIONS

    monkeypatch.delenv("DATABASE_POOL_MIN", raising=False)
    settings = ChatSettings(
        DATABASE_URL=database_url, DATABASE_POOL_MAX=6, DATABASE_POOL_IDLE_S=0.5
    )
    admin = await asyncpg.connect(database_url)
    try:
        async with open_postgres(settings, schema="chat", migrations=MIGRATIONS) as pool:
            assert pool.get_size() == 6
            assert await connections_named(admin, "lectern-chat") == 6
            # A burst, then longer idle than the idle limit: nothing closes below the floor.
            await asyncio.gather(*(pool.fetchval("SELECT pg_sleep(0.05)") for _ in range(30)))
            await asyncio.sleep(1.5)
            assert pool.get_size() == 6
            assert await connections_named(admin, "lectern-chat") == 6
    finally:
        await admin.close()


async def test_chats_redis_connections_are_opened_before_the_first_command() -> None:
    if not REDIS_URL:
        pytest.skip("needs REDIS_URL")
    settings = ChatSettings(REDIS_URL=REDIS_URL, service_name=f"chat-{uuid.uuid4().hex[:8]}")
    name = f"lectern-{settings.service_name}"
    server = redis_async.Redis.from_url(REDIS_URL)

    async def held() -> int:
        return sum(1 for c in await server.client_list() if c.get("name") == name)

    try:
        async with open_redis(settings, max_connections=16, min_connections=5) as redis:
            assert await held() == 5
            # A burst within the floor opens none; one past it opens only what it needs.
            await asyncio.gather(*(redis.ping() for _ in range(5)))
            assert await held() == 5
            await asyncio.gather(*(redis.blpop([f"{name}:none"], timeout=0.2) for _ in range(8)))
            assert await held() == 8
        assert await held() == 0  # closed with the client
    finally:
        await server.aclose()


async def test_a_redis_that_is_not_there_yet_does_not_stop_the_start() -> None:
    settings = ChatSettings(REDIS_URL="redis://127.0.0.1:9/0")  # the discard port: refused
    async with open_redis(settings, max_connections=4, min_connections=4) as redis:
        assert redis is not None
