"""How a reader attached in the producing worker receives an answer's events: waiting events
in one batch, keep-alives while the model is silent, and `stream_lost` when the producer is
gone. Pure asyncio (no stack): the timing is what is under test."""

from __future__ import annotations

import asyncio
import time
import uuid

from lectern_chat.events import Event, LocalReaders


async def test_waiting_events_arrive_in_one_batch_and_the_terminal_one_ends_it() -> None:
    readers, message = LocalReaders(), uuid.uuid4()
    queue = readers.attach(message)
    for n, name in enumerate(["meta", "sources", "token", "token", "done"], start=1):
        readers.publish(message, Event(n, name, {}))
    batches = [b async for b in readers.follow(message, queue, idle_s=5, keepalive_s=5)]
    assert [[e.id for e in b] for b in batches] == [[1, 2, 3, 4, 5]]
    assert readers.count(message) == 0  # detached once the answer ended


async def test_silence_sends_keepalives_then_gives_up_after_the_idle_limit() -> None:
    readers, message = LocalReaders(), uuid.uuid4()
    queue = readers.attach(message)
    readers.publish(message, Event(1, "meta", {}))
    started = time.monotonic()
    seen: list[tuple[float, list[str]]] = []
    async for batch in readers.follow(message, queue, idle_s=0.5, keepalive_s=0.15):
        seen.append((time.monotonic() - started, [e.name for e in batch]))
    names = [b for _, b in seen]
    assert names[0] == ["meta"]
    assert names[1:-1] and all(b == [] for b in names[1:-1])  # keep-alives in the silence
    assert names[-1] == ["error"]  # stream_lost
    assert 0.45 <= seen[-1][0] < 1.0  # the idle limit, not a multiple of the keep-alive


async def test_an_idle_limit_shorter_than_the_keepalive_is_kept() -> None:
    readers, message = LocalReaders(), uuid.uuid4()
    queue = readers.attach(message)
    started = time.monotonic()
    batches = [b async for b in readers.follow(message, queue, idle_s=0.2, keepalive_s=15)]
    assert [[e.name for e in b] for b in batches] == [["error"]]
    assert time.monotonic() - started < 1.0


async def test_an_event_after_a_pause_arrives_at_once() -> None:
    readers, message = LocalReaders(), uuid.uuid4()
    queue = readers.attach(message)

    async def produce() -> None:
        await asyncio.sleep(0.3)
        readers.publish(message, Event(1, "done", {}))

    task = asyncio.create_task(produce())
    started = time.monotonic()
    batches = [b async for b in readers.follow(message, queue, idle_s=5, keepalive_s=0.1)]
    await task
    assert batches[-1][0].name == "done"
    assert 0.25 <= time.monotonic() - started < 0.6
    assert sum(1 for b in batches if not b) >= 2  # keep-alives every 0.1 s meanwhile
