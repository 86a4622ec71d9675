"""Single flight across replicas: one Redis lock (random token, TTL refreshed while the holder
works) per uncached item, so N concurrent requests cause one model call. A holder that fails
leaves a short-lived failure note under its token for the requests that waited on it; later
requests never read that note, so a failure does not poison the key."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from lectern_common.redis import Keys

log = structlog.get_logger()

_RELEASE = """if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1])
else return 0 end"""
_REFRESH = """if redis.call('get', KEYS[1]) == ARGV[1] then
return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"""


@dataclass(frozen=True)
class Lock:
    key: str
    token: str


@dataclass(frozen=True)
class Failure:
    code: str
    message: str
    retryable: bool


class Flight:
    def __init__(self, redis: Redis, keys: Keys, *, ttl_s: float, failure_memory_s: float) -> None:
        self.redis, self.keys = redis, keys
        self.ttl_ms = int(ttl_s * 1000)
        self.failure_ms = int(failure_memory_s * 1000)

    def lock_key(self, item: str) -> str:
        return self.keys("summary", "lock", item)

    async def acquire(self, item: str) -> Lock | None:
        token = secrets.token_hex(16)
        key = self.lock_key(item)
        if await self.redis.set(key, token, nx=True, px=self.ttl_ms):
            return Lock(key, token)
        return None

    async def release(self, lock: Lock) -> None:
        """Give the lock back. Without Redis it expires on its own within its TTL, and what
        the holder made (stored, or failed) still reaches its own request."""
        try:
            await self.redis.eval(_RELEASE, 1, lock.key, lock.token)
        except RedisError as exc:
            log.warning("summary.lock_release_failed", error=type(exc).__name__)

    @contextlib.asynccontextmanager
    async def held(self, lock: Lock) -> AsyncIterator[None]:
        """Keep the lock alive while the body runs; if this process dies the lock expires."""
        task = asyncio.create_task(self._refresh(lock))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _refresh(self, lock: Lock) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                await self.redis.eval(_REFRESH, 1, lock.key, lock.token, self.ttl_ms)
            except RedisError as exc:
                # Worst case the lock expires and a second replica generates too.
                log.warning("summary.lock_refresh_failed", error=type(exc).__name__)

    async def holder(self, item: str) -> str | None:
        token = await self.redis.get(self.lock_key(item))
        if token is None:
            return None
        return token.decode() if isinstance(token, bytes) else str(token)

    async def note_failure(self, lock: Lock, failure: Failure) -> None:
        """Leave the failure for the requests that waited; without Redis they find no note and
        try themselves, and the holder's own request still gets its failure."""
        try:
            await self.redis.set(
                self.keys("summary", "failed", lock.token),
                orjson.dumps(failure.__dict__),
                px=self.failure_ms,
            )
        except RedisError as exc:
            log.warning("summary.failure_note_failed", error=type(exc).__name__)

    async def failure_of(self, token: str) -> Failure | None:
        raw = await self.redis.get(self.keys("summary", "failed", token))
        return Failure(**orjson.loads(raw)) if raw else None
