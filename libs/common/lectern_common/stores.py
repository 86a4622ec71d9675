"""Open and close the stores a service uses: its PostgreSQL pool (with its migrations) and, for
the services that use Redis, a Redis client. Each is an async context manager, so a lifespan
enters only what it needs on one `AsyncExitStack` and everything opened is closed again, also
when a later step fails."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from lectern_common import db, metrics
from lectern_common.health import Check
from lectern_common.http import InternalClient
from lectern_common.redis import create_redis, open_connections
from lectern_common.settings import ServiceSettings


def require_url(value: str | None, name: str) -> str:
    if not value:
        raise RuntimeError(f"{name} is not set (`make run` sets it; see README)")
    return value


@asynccontextmanager
async def open_postgres(
    settings: ServiceSettings, *, schema: str, migrations: Path
) -> AsyncIterator[asyncpg.Pool]:
    """The service's pool, its schema migrated before it is handed out."""
    pool = await db.create_pool(
        require_url(settings.database_url, "DATABASE_URL"),
        schema=schema,
        pooled=settings.database_is_pooled,
        min_size=settings.database_pool_floor,
        max_size=settings.database_pool_max,
        idle_s=settings.database_pool_idle_s,
    )
    try:
        await db.migrate(pool, schema=schema, folder=migrations)
        async with metrics.watching_pool(settings.service_name, pool):
            yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def open_redis(
    settings: ServiceSettings, *, max_connections: int | None = None, min_connections: int = 0
) -> AsyncIterator[Redis]:
    """A Redis client (redis.py: its timeouts, retries and pool), with `min_connections` of its
    pool opened before it is handed out."""
    redis = create_redis(
        require_url(settings.redis_url, "REDIS_URL"),
        max_connections=max_connections,
        client_name=redis_client_name(settings.service_name),
    )
    try:
        if min_connections:
            await open_connections(redis, min_connections)
        yield redis
    finally:
        await redis.aclose()


def redis_client_name(service: str) -> str:
    """How a service's Redis connections are named (CLIENT LIST shows who holds what)."""
    return f"lectern-{service}"


def postgres_check(pool: asyncpg.Pool) -> Check:
    return lambda: db.ping(pool)


def redis_check(redis: Redis) -> Check:
    return redis.ping


def dependency_checks(
    *, pool: asyncpg.Pool, redis: Redis | None = None, clients: tuple[InternalClient, ...] = ()
) -> dict[str, Check]:
    """What `/ready` checks: exactly the stores and services this service opened."""
    checks = {"postgres": postgres_check(pool)}
    if redis is not None:
        checks["redis"] = redis_check(redis)
    for client in clients:
        checks[client.name] = client.ping
    return checks
