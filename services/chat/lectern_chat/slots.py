"""How many answers each owner, and each guest address, has streaming at once, counted in Redis
so the limits hold across workers and replicas."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from redis.asyncio import Redis

from lectern_chat.owners import Owner
from lectern_common.redis import Keys

log = structlog.get_logger()

# All or nothing in one round trip: refuse (the 1-based index of the first full counter) when
# any counter is at its limit, else count one more answer on each. KEYS: the counters;
# ARGV[1]: their expiry; ARGV[1 + i]: the limit of KEYS[i].
_TAKE = """
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('get', key) or '0') >= tonumber(ARGV[i + 1]) then return i end
end
for _, key in ipairs(KEYS) do
  redis.call('incr', key)
  redis.call('expire', key, ARGV[1])
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
    """The counters one open answer holds, given back when it ends."""

    keys: tuple[str, ...]


class StreamSlots:
    """At most `per_owner` open answers per owner and, for guests, `per_address` per client
    address; a count left behind by a dead worker expires after `ttl_s` (no answer runs
    longer)."""

    def __init__(
        self, redis: Redis, keys: Keys, *, per_owner: int, per_address: int, ttl_s: int
    ) -> None:
        self.redis, self.keys, self.ttl_s = redis, keys, ttl_s
        self.per_owner, self.per_address = per_owner, per_address
        self._take = redis.register_script(_TAKE)

    async def take(self, owner: Owner, *, address: str | None = None) -> Slot | None:
        """Count an open answer for this owner (and a guest's address); None when either
        already has as many as it may."""
        counters = [(self.keys("chat", "open", owner.key), self.per_owner)]
        if address is not None and owner.user_id is None:
            counters.append((self.keys("chat", "open-address", address), self.per_address))
        keys = tuple(key for key, _ in counters)
        refused = await self._take(keys=keys, args=[self.ttl_s, *(n for _, n in counters)])
        if refused:
            log.info("chat.streams_capped", by="owner" if refused == 1 else "address")
            return None
        return Slot(keys)

    async def release(self, slot: Slot) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in slot.keys:
                    pipe.decr(key)
                await pipe.execute()
        except Exception as exc:  # the keys expire on their own
            log.warning("chat.slot_release_failed", error_type=type(exc).__name__)
