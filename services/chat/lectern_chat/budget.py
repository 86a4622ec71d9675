"""Each reader's daily allowance of model tokens (guests counted by their address), kept in
Redis per UTC day: an answer asked past it is extractive instead of refused, so cost stays
bounded and nobody is left without an answer."""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from lectern_chat.owners import Owner
from lectern_common.redis import Keys

log = structlog.get_logger()

# A day's counter outlives its day a little (clocks of several workers differ).
_TTL_S = 2 * 24 * 3600


def payer(owner: Owner, address: str | None) -> str:
    """Who pays for an answer: the reader, else the guest's address, else the guest token (a
    call that did not come through the gateway)."""
    if owner.user_id:
        return f"user:{owner.user_id}"
    return f"ip:{address}" if address else owner.key


class TokenBudget:
    """`daily_tokens` model tokens (prompt + output, as the model's usageMetadata counts them)
    per payer per UTC day; 0 means no limit."""

    def __init__(self, redis: Redis, keys: Keys, *, daily_tokens: int) -> None:
        self.redis, self.keys, self.daily_tokens = redis, keys, daily_tokens

    def _key(self, who: str) -> str:
        return self.keys("chat", "tokens", datetime.now(UTC).strftime("%Y-%m-%d"), who)

    async def spent(self, who: str) -> bool:
        """Whether today's allowance is used up. Redis that cannot be read does not stop an
        answer: the model is used (the stream needs Redis anyway and reports it)."""
        if not self.daily_tokens:
            return False
        try:
            used = await self.redis.get(self._key(who))
        except RedisError as exc:
            log.warning("chat.budget_unreadable", error_type=type(exc).__name__)
            return False
        return int(used or 0) >= self.daily_tokens

    async def charge(self, who: str, tokens: int) -> None:
        if not self.daily_tokens or tokens <= 0:
            return
        key = self._key(who)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.incrby(key, tokens)
                pipe.expire(key, _TTL_S)
                await pipe.execute()
        except RedisError as exc:
            log.warning("chat.budget_not_charged", error_type=type(exc).__name__, tokens=tokens)
