"""The open-stream caps on the stack's Redis: an answer left behind by a dead worker (taken, never
given back) lapses when its time limit has passed, even while its owner keeps asking."""

from __future__ import annotations

import asyncio
import uuid

from redis.asyncio import Redis

from lectern_chat.owners import guest_owner, reader_owner
from lectern_chat.slots import StreamSlots
from lectern_common.redis import Keys
from lectern_dev.stack import Stack


async def test_a_slot_never_given_back_lapses_while_the_owner_keeps_asking(stack: Stack) -> None:
    assert stack.redis_url
    redis = Redis.from_url(stack.redis_url)
    slots = StreamSlots(
        redis, Keys(f"test-slots-{uuid.uuid4().hex}:"), per_owner=2, per_address=3, ttl_s=2
    )
    owner = reader_owner("reader-slots")
    try:
        leaked = await slots.take(owner)  # its worker dies: never released
        assert leaked is not None
        # The owner goes on asking, one answer at a time, for longer than the time limit.
        for _ in range(12):
            slot = await slots.take(owner)
            assert slot is not None
            await slots.release(slot)
            await asyncio.sleep(0.25)
        # The leaked answer has lapsed: both slots are free again.
        first, second = await slots.take(owner), await slots.take(owner)
        assert first is not None and second is not None
        assert await slots.take(owner) is None  # and the cap still holds
    finally:
        await redis.aclose()


async def test_guests_are_capped_per_address_as_well(stack: Stack) -> None:
    assert stack.redis_url
    redis = Redis.from_url(stack.redis_url)
    slots = StreamSlots(
        redis, Keys(f"test-slots-{uuid.uuid4().hex}:"), per_owner=2, per_address=3, ttl_s=60
    )
    try:
        taken = [
            await slots.take(guest_owner(f"g{n}".encode()), address="10.1.2.3") for n in range(4)
        ]
        assert [slot is not None for slot in taken] == [True, True, True, False]
        first = taken[0]
        assert first is not None
        await slots.release(first)
        assert await slots.take(guest_owner(b"g9"), address="10.1.2.3") is not None
    finally:
        await redis.aclose()
