"""How many answers each owner has streaming at once, counted in Redis so the limit holds
across workers and replicas."""

from __future__ import annotations

import structlog
from redis.asyncio import Redis

from lectern_chat.owners import Owner
from lectern_common.redis import Keys

log = structlog.get_logger()


class StreamSlots:
    """At most `limit` open answers per owner; a count left behind by a dead worker expires
    after `ttl_s` (no answer runs longer)."""

    def __init__(self, redis: Redis, keys: Keys, *, limit: int, ttl_s: int) -> None:
        self.redis, self.keys, self.limit, self.ttl_s = redis, keys, limit, ttl_s

    def _key(self, owner: Owner) -> str:
        return self.keys("chat", "open", owner.key)

    async def take(self, owner: Owner) -> bool:
        """Count an open answer for this owner; False when they already have too many."""
        key = self._key(owner)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, self.ttl_s)
            count, _ = await pipe.execute()
        if count > self.limit:
            await self.redis.decr(key)
            return False
        return True

    async def release(self, owner: Owner) -> None:
        try:
            await self.redis.decr(self._key(owner))
        except Exception as exc:  # the key expires on its own
            log.warning("chat.slot_release_failed", error_type=type(exc).__name__)
