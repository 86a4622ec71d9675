"""How many answers each owner, and each guest address, has streaming at once, counted in Redis
so the limits hold across workers and replicas."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis

from lectern_chat.owners import Owner
from lectern_common.redis import Keys

log = structlog.get_logger()

# All or nothing in one round trip. Each open answer is a member of a sorted set per counter,
# scored by when it lapses, so an answer whose worker died is forgotten `ttl` after it began
# even while its owner keeps asking (a plain counter's expiry moved with every new answer).
# Refuse (the 1-based index of the first full set) when any set is at its limit, else add the
# member to each. KEYS: the sets; ARGV: now, ttl, member, then the limit of KEYS[i].
_TAKE = """
local now, ttl, member = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
for i, key in ipairs(KEYS) do
  redis.call('zremrangebyscore', key, '-inf', now)
  if redis.call('zcard', key) >= tonumber(ARGV[i + 3]) then return i end
end
for _, key in ipairs(KEYS) do
  redis.call('zadd', key, now + ttl, member)
  redis.call('expire', key, ttl)
end
return 0
"""


def guest_address(rate_key: str | None) -> str | None:
    """The client address in the gateway's rate key (`ip:<address>`, set for guests by the
    forwardAuth answer, which the gateway strips from what a client sends); None for a reader
    (the key is their id) and for a call that did not come through the gateway."""
    if rate_key and rate_key.startswith("ip:") and len(rate_key) > 3:
        return rate_key[3:]
    return None


@dataclass(frozen=True)
class Slot:
    """The sets one open answer is a member of, left when it ends."""

    keys: tuple[str, ...]
    member: str


class StreamSlots:
    """At most `per_owner` open answers per owner and, for guests, `per_address` per client
    address. A running answer renews its slot with its heartbeat; one left behind by a dead
    worker lapses `ttl_s` after its last renewal (a lapse as long as the longest answer kept a
    classroom behind one address refused for ten minutes after a chat worker was killed)."""

    def __init__(
        self, redis: Redis, keys: Keys, *, per_owner: int, per_address: int, ttl_s: int
    ) -> None:
        self.redis, self.keys, self.ttl_s = redis, keys, ttl_s
        self.per_owner, self.per_address = per_owner, per_address
        self._take = redis.register_script(_TAKE)

    async def take(self, owner: Owner, *, address: str | None = None) -> Slot | None:
        """Count an open answer for this owner (and a guest's address); None when either
        already has as many as it may."""
        counters = [(self.keys("chat", "streams", owner.key), self.per_owner)]
        if address is not None and owner.user_id is None:
            counters.append((self.keys("chat", "streams-address", address), self.per_address))
        keys = tuple(key for key, _ in counters)
        member = secrets.token_hex(8)
        refused = await self._take(
            keys=keys, args=[time.time(), self.ttl_s, member, *(n for _, n in counters)]
        )
        if refused:
            log.info("chat.streams_capped", by="owner" if refused == 1 else "address")
            return None
        return Slot(keys, member)

    async def renew(self, slot: Slot) -> None:
        """Push the slot's lapse `ttl_s` further: the running answer's worker calls this with
        each heartbeat, so only the slots of a dead worker lapse (within `ttl_s`)."""
        lapses = time.time() + self.ttl_s
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in slot.keys:
                pipe.zadd(key, {slot.member: lapses}, xx=True)
                pipe.expire(key, self.ttl_s)
            await pipe.execute()

    async def release(self, slot: Slot) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in slot.keys:
                    pipe.zrem(key, slot.member)
                await pipe.execute()
        except Exception as exc:  # the member lapses on its own
            log.warning("chat.slot_release_failed", error_type=type(exc).__name__)
