"""Where an answer's events go: its `Emitter` numbers them and hands each to the readers
attached in this worker (an in-process queue, no round trip) and to a Redis stream, so a
reader who reconnects with Last-Event-ID, on any worker or replica, gets the rest of that
answer. Readers following the Redis log keep a heartbeat in a Redis set, so the worker
producing the answer knows somebody still listens; the worker producing an answer keeps one
too (a short-lived key it refreshes), so a reader, a follow-up or the sweeper knows when that
worker died mid-answer.

Event ids are small integers per message (1, 2, 3, ...) stored as Redis stream ids `0-<n>`,
so "the events after Last-Event-ID n" is exactly `XREAD ... 0-<n>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import cast
from uuid import UUID

import orjson
import structlog
from redis.asyncio import Redis

from lectern_common.redis import Keys
from lectern_common.tasks import BackgroundTasks

log = structlog.get_logger()

TERMINAL = frozenset({"done", "error"})
# Reading blocks at most this long so a listener can refresh its heartbeat in between; it
# stays under the Redis client's socket timeout.
BLOCK_MS = 1000
HEARTBEAT_S = 1.0
LISTENER_TTL_S = 3.0
# A reader finding no new event for this long asks whether the answer's producer still beats.
PRODUCER_CHECK_AFTER_S = 2.0
# What a producer's heartbeat holds: which process it is (for whoever debugs a lost answer).
WORKER = f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Event:
    id: int
    name: str
    data: dict

    @property
    def terminal(self) -> bool:
        return self.name in TERMINAL


def stream_lost(after: int) -> Event:
    return Event(
        after + 1,
        "error",
        {
            "code": "stream_lost",
            "retryable": True,
            "message": "the answer stopped arriving; ask again",
        },
    )


class LocalReaders:
    """Queues of the readers attached, in this worker, to answers this worker produces."""

    def __init__(self) -> None:
        self._queues: dict[UUID, set[asyncio.Queue[Event]]] = {}

    def attach(self, message_id: UUID) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._queues.setdefault(message_id, set()).add(queue)
        return queue

    def detach(self, message_id: UUID, queue: asyncio.Queue[Event]) -> None:
        queues = self._queues.get(message_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._queues[message_id]

    def drop(self, message_id: UUID) -> None:
        """Forget an answer that has ended (its readers already got the last event)."""
        self._queues.pop(message_id, None)

    def count(self, message_id: UUID) -> int:
        return len(self._queues.get(message_id, ()))

    def publish(self, message_id: UUID, event: Event) -> None:
        for queue in self._queues.get(message_id, ()):
            queue.put_nowait(event)

    async def follow(
        self, message_id: UUID, queue: asyncio.Queue[Event], *, idle_s: float, keepalive_s: float
    ) -> AsyncIterator[list[Event]]:
        """Yield the events put on `queue` until a terminal one (or `idle_s` of silence):
        each time, all that are waiting, so a busy worker writes them to the reader at once
        instead of one write each; an empty list after each `keepalive_s` of silence."""
        last = 0
        quiet_since = kept_alive = time.monotonic()
        try:
            while True:
                # Wake for whichever comes first: the idle limit or the next keep-alive.
                wait = min(quiet_since + idle_s, kept_alive + keepalive_s) - time.monotonic()
                try:
                    async with asyncio.timeout(max(wait, 0.0)):
                        batch = [await queue.get()]
                except TimeoutError:
                    if time.monotonic() - quiet_since >= idle_s:
                        log.warning("chat.stream_lost", message_id=str(message_id), after=last)
                        yield [stream_lost(last)]
                        return
                    kept_alive = time.monotonic()
                    yield []
                    continue
                while not batch[-1].terminal and not queue.empty():
                    batch.append(queue.get_nowait())
                yield batch
                last, quiet_since = batch[-1].id, time.monotonic()
                kept_alive = quiet_since
                if batch[-1].terminal:
                    return
        finally:
            self.detach(message_id, queue)


class EventLog:
    """Append, replay and follow the events of an answer in Redis; track remote listeners."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        ttl_s: int,
        done_ttl_s: int,
        producer_ttl_s: int,
        tasks: BackgroundTasks,
    ) -> None:
        self.redis, self.keys, self.ttl_s, self.done_ttl_s = redis, keys, ttl_s, done_ttl_s
        self.producer_ttl_s = producer_ttl_s
        # Holds the clean-ups scheduled from cancelled requests (they cannot await any more).
        self.tasks = tasks

    def _events_key(self, message_id: UUID) -> str:
        return self.keys("chat", "events", str(message_id))

    def _listeners_key(self, message_id: UUID) -> str:
        return self.keys("chat", "listeners", str(message_id))

    def _producer_key(self, message_id: UUID) -> str:
        return self.keys("chat", "producer", str(message_id))

    async def append(self, message_id: UUID, events: list[Event]) -> None:
        """Append events in one round trip; the expiry is set by the first event of the
        answer (`ttl_s`) and shortened by the last one (`done_ttl_s`). The first also starts
        the producer's heartbeat (before the log exists, so nobody who finds the log finds no
        heartbeat) and the last ends it."""
        key = self._events_key(message_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            if events[0].id == 1:
                pipe.set(self._producer_key(message_id), WORKER, ex=self.producer_ttl_s)
            for event in events:
                pipe.xadd(
                    key, {"event": event.name, "data": orjson.dumps(event.data)}, id=f"0-{event.id}"
                )
            if events[-1].terminal:
                pipe.expire(key, self.done_ttl_s)
                pipe.expire(self._listeners_key(message_id), self.done_ttl_s)
                pipe.delete(self._producer_key(message_id))
            elif events[0].id == 1:
                pipe.expire(key, self.ttl_s)
            await pipe.execute()

    async def beat(self, message_id: UUID) -> None:
        """The producer's heartbeat: this answer is still being written."""
        await self.redis.set(self._producer_key(message_id), WORKER, ex=self.producer_ttl_s)

    async def producing(self, message_ids: list[UUID]) -> set[UUID]:
        """Those of `message_ids` whose producer beat within the last `producer_ttl_s`."""
        if not message_ids:
            return set()
        beats = await self.redis.mget([self._producer_key(m) for m in message_ids])
        return {m for m, beat in zip(message_ids, beats, strict=True) if beat is not None}

    async def exists(self, message_id: UUID) -> bool:
        return bool(await self.redis.exists(self._events_key(message_id)))

    async def read_after(
        self, message_id: UUID, after: int, *, block_ms: int | None = BLOCK_MS
    ) -> list[Event]:
        """The events after `after`, waiting up to `block_ms` for one (None: not at all)."""
        key = self._events_key(message_id)
        # Stream entries as the client returns them without decoding: (key, [(id, fields)]).
        reply = cast(
            list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] | None,
            await self.redis.xread({key: f"0-{after}"}, count=200, block=block_ms),
        )
        events = []
        for _, entries in reply or []:
            for entry_id, fields in entries:
                events.append(
                    Event(
                        id=int(entry_id.split(b"-")[1]),
                        name=fields[b"event"].decode(),
                        data=orjson.loads(fields[b"data"]),
                    )
                )
        return events

    async def attach(self, message_id: UUID, listener: str) -> None:
        key = self._listeners_key(message_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {listener: time.time() + LISTENER_TTL_S})
            pipe.expire(key, self.ttl_s)
            await pipe.execute()

    async def detach(self, message_id: UUID, listener: str) -> None:
        try:
            await self.redis.zrem(self._listeners_key(message_id), listener)
        except Exception as exc:  # the heartbeat runs out on its own
            log.warning("chat.detach_failed", error_type=type(exc).__name__)

    def detach_later(self, message_id: UUID, listener: str) -> None:
        # Refused while the worker shuts down: the heartbeat then simply runs out (it counts
        # for LISTENER_TTL_S at most).
        with contextlib.suppress(RuntimeError):
            self.tasks.spawn(self.detach(message_id, listener), name="chat.detach_listener")

    async def listeners(self, message_id: UUID) -> int:
        return int(await self.redis.zcount(self._listeners_key(message_id), time.time(), "+inf"))

    async def forget(self, message_ids: list[UUID]) -> None:
        """Drop the logs of deleted messages. Without Redis the deletion still stands: the logs
        expire within `ttl_s`, and resuming a deleted message is a 404 before any log is read."""
        keys = [k for m in message_ids for k in (self._events_key(m), self._listeners_key(m))]
        if not keys:
            return
        try:
            await self.redis.delete(*keys)
        except Exception as exc:
            log.warning("chat.forget_failed", error_type=type(exc).__name__, keys=len(keys))

    async def _producer_gone(self, message_id: UUID, after: int) -> bool:
        """Whether nothing more will come: no heartbeat, and (read again after that, since the
        last event is appended before the heartbeat ends) still nothing after `after`."""
        if await self.producing([message_id]):
            return False
        return not await self.read_after(message_id, after, block_ms=None)

    async def follow(
        self,
        message_id: UUID,
        *,
        after: int,
        idle_s: float,
        keepalive_s: float,
        on_lost: Callable[[], Awaitable[None]] | None = None,
    ) -> AsyncIterator[list[Event]]:
        """Yield the events after `after` as they are appended, a batch at a time, until a
        terminal one (an empty batch after each `keepalive_s` of silence). While following,
        keep a heartbeat in the listener set. When the log has been silent a while and the
        answer's producer no longer beats (its worker died, or the answer was settled without
        its last event), or after `idle_s` of silence in any case, call `on_lost` and end with
        a `stream_lost` error."""
        listener = uuid.uuid4().hex
        await self.attach(message_id, listener)
        beat = idle_since = kept_alive = time.monotonic()
        try:
            while True:
                events = await self.read_after(message_id, after)
                now = time.monotonic()
                if now - beat >= HEARTBEAT_S:
                    await self.attach(message_id, listener)
                    beat = now
                if not events:
                    if now - idle_since > idle_s or (
                        now - idle_since >= PRODUCER_CHECK_AFTER_S
                        and await self._producer_gone(message_id, after)
                    ):
                        log.warning("chat.stream_lost", message_id=str(message_id), after=after)
                        if on_lost is not None:
                            await on_lost()
                        yield [stream_lost(after)]
                        return
                    if now - kept_alive >= keepalive_s:
                        kept_alive = now
                        yield []
                    continue
                idle_since = kept_alive = now
                ended = next((i for i, e in enumerate(events) if e.terminal), None)
                if ended is not None:
                    yield events[: ended + 1]
                    return
                yield events
                after = events[-1].id
        finally:
            self.detach_later(message_id, listener)


class Emitter:
    """Numbers the events of one answer and hands each to the readers attached in this worker
    at once. The Redis log (for readers resuming anywhere) is written behind, in batches at
    most every `flush_s`, so the answer never waits on it. The last event is handed on only
    once the whole log is written, so a reader who saw the end finds all of it in the log."""

    def __init__(
        self, readers: LocalReaders, events: EventLog, message_id: UUID, *, flush_s: float
    ) -> None:
        self.readers, self.events, self.message_id = readers, events, message_id
        self.flush_s = flush_s
        self.last_id = 0
        self._unwritten: list[Event] = []
        self._writer: asyncio.Task | None = None
        self._flush_now = asyncio.Event()

    async def emit(self, name: str, data: dict) -> None:
        self.last_id += 1
        event = Event(self.last_id, name, data)
        self._unwritten.append(event)
        if event.terminal:
            self._flush_now.set()
            try:
                if self._writer is not None and not self._writer.done():
                    await self._writer  # it writes what is left, this event included
                else:
                    await self._write()
            finally:  # a cancelled write must not leave the readers here without the end
                self.readers.publish(self.message_id, event)
            return
        self.readers.publish(self.message_id, event)
        if self._writer is None or self._writer.done():
            # The first event goes out at once, later ones gather for up to flush_s.
            delay = 0.0 if event.id == 1 else self.flush_s
            self._writer = asyncio.create_task(self._write(delay))

    async def _write(self, delay: float = 0.0) -> None:
        if delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), delay)
        while self._unwritten:
            batch, self._unwritten = self._unwritten, []
            try:
                await self.events.append(self.message_id, batch)
            except Exception as exc:  # the live answer goes on; only a resume would miss it
                log.warning(
                    "chat.log_append_failed", error_type=type(exc).__name__, events=len(batch)
                )
