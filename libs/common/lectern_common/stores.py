"""Open and close a service's PostgreSQL pool (with its migrations) and Redis client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from lectern_common import db
from lectern_common.redis import Keys, create_redis
from lectern_common.settings import ServiceSettings


@dataclass
class Stores:
    pool: asyncpg.Pool
    redis: Redis
    keys: Keys

    def checks(self) -> dict:
        return {"postgres": lambda: db.ping(self.pool), "redis": self.redis.ping}


def require_url(value: str | None, name: str) -> str:
    if not value:
        raise RuntimeError(f"{name} is not set (`make run` sets it; see README)")
    return value


@asynccontextmanager
async def open_stores(
    settings: ServiceSettings, *, schema: str, migrations: Path, extra_search_path: str = ""
) -> AsyncIterator[Stores]:
    pool = await db.create_pool(
        require_url(settings.database_url, "DATABASE_URL"),
        schema=schema,
        min_size=settings.database_pool_min,
        max_size=settings.database_pool_max,
        extra_search_path=extra_search_path,
    )
    redis = create_redis(require_url(settings.redis_url, "REDIS_URL"))
    try:
        await db.migrate(pool, schema=schema, folder=migrations)
        yield Stores(pool=pool, redis=redis, keys=Keys(settings.redis_prefix))
    finally:
        await redis.aclose()
        await pool.close()
