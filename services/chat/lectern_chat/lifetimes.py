"""How long an answer lives: each runs as its own task, detached from the HTTP request that
asked for it, until it ends, runs past `stream_max_s`, is abandoned (nobody listened for
`detach_grace_s`) or the worker shuts down; however it ends, what was produced is stored.
While it runs its worker keeps a heartbeat in Redis; an answer still `streaming` without one
lost its worker (killed mid-answer) and is stored as failed `stream_lost` by whoever finds it
first: a follow-up in its conversation, a reader resuming it, or the sweeper.

Events go to the answer's Redis log and every listener (the first request, or a resumed one on
any worker) reads them from there or, in the worker producing it, from an in-process queue.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
import structlog

from lectern_chat import store
from lectern_chat.events import Emitter, Event, EventLog, LocalReaders
from lectern_chat.pipeline import Job, Outcome, Pipeline
from lectern_chat.settings import ChatSettings
from lectern_chat.slots import Slot, StreamSlots
from lectern_common import metrics
from lectern_common.tasks import BackgroundTasks

log = structlog.get_logger()

# How often a running answer checks whether anybody still listens.
LISTENERS_EVERY_S = 0.5
# An answer found still streaming this long after the longest an answer may run is dead, with
# or without a heartbeat to tell (Redis may have been away all along).
SWEEP_MARGIN_S = 30


class Answers:
    """The answers running in this worker, held by `tasks` (drained at shutdown: each answer
    cancelled then stores `interrupted`)."""

    def __init__(
        self,
        *,
        settings: ChatSettings,
        pool: asyncpg.Pool,
        pipeline: Pipeline,
        events: EventLog,
        slots: StreamSlots,
        tasks: BackgroundTasks,
    ) -> None:
        self.settings, self.pool, self.pipeline, self.events = settings, pool, pipeline, events
        self.slots, self.tasks = slots, tasks
        self.readers = LocalReaders()
        # Set on SIGTERM: no new answer starts, the running ones get until the grace ends.
        self.closing = False

    async def drain(self, deadline: float) -> None:
        """Let the running answers finish until `deadline`, then stop the rest: each stores
        what it produced and ends its stream with a retryable `error` (shutting_down)."""
        self.closing = True
        running = self.tasks.running("chat.answer.")
        log.info("chat.draining", answers=len(running))
        if not running:
            return
        _, pending = await asyncio.wait(running, timeout=max(0.0, deadline - time.monotonic()))
        for task in pending:
            task.cancel()
        if pending:
            log.warning("chat.answers_stopped_at_shutdown", count=len(pending))
            await asyncio.wait(pending)

    def start(self, job: Job, slot: Slot) -> AsyncIterator[list[Event]]:
        """Start answering `job` (its stream `slot` already taken, released when the answer
        ends) and return its events for the request that asked."""
        message_id = job.turn.assistant_message_id
        # Attached before the answer starts, so no event is missed and it is never "abandoned".
        queue = self.readers.attach(message_id)
        try:
            self.tasks.spawn(self._run(job, slot), name=f"chat.answer.{message_id}")
        except BaseException:
            self.readers.detach(message_id, queue)
            raise
        return self.readers.follow(
            message_id,
            queue,
            idle_s=self.settings.resume_idle_s,
            keepalive_s=self.settings.sse_keepalive_s,
        )

    def resume(self, message_id: UUID, *, after: int) -> AsyncIterator[list[Event]]:
        """The events of an answer after `after`, from its log (this worker or any other may be
        producing it); an answer whose producer is gone ends with `stream_lost` and is stored
        so."""

        async def lost() -> None:
            try:
                await self.settle_lost([message_id])
            except Exception as exc:  # the reader still gets the end of the stream
                log.warning("chat.settle_failed", error_type=type(exc).__name__)

        return self.events.follow(
            message_id,
            after=after,
            idle_s=self.settings.resume_idle_s,
            keepalive_s=self.settings.sse_keepalive_s,
            on_lost=lost,
        )

    async def settle_lost(self, message_ids: list[UUID]) -> list[UUID]:
        """Store as failed `stream_lost` those of these `streaming` answers whose producer no
        longer beats; the ones it stored. An answer younger than the heartbeat's TTL is left
        alone: its first beat may not be written yet. (Should a live producer be taken for dead,
        say after Redis was away for longer than the TTL, its own end overwrites this.)"""
        alive = await self.events.producing(message_ids)
        dead = [m for m in message_ids if m not in alive]
        if not dead:
            return []
        settled = await store.mark_lost(self.pool, dead, older_than_s=self.settings.heartbeat_ttl_s)
        if settled:
            log.warning("chat.lost_answers_settled", count=len(settled))
        return settled

    async def sweep_forever(self) -> None:
        """Settle the answers whose worker died, now and every `sweep_interval_s`, in every
        worker: the updates are idempotent and touch only such rows."""
        older_than_s = self.settings.stream_max_s + SWEEP_MARGIN_S
        while True:
            try:
                swept = await store.sweep_dead_answers(self.pool, older_than_s)
                if swept:
                    log.warning("chat.dead_answers_swept", count=swept)
                streaming = await store.streaming_answers(
                    self.pool, older_than_s=self.settings.heartbeat_ttl_s
                )
                if streaming:
                    await self.settle_lost(streaming)
            except Exception as exc:  # a store may be away for a while; try again later
                log.warning("chat.sweep_failed", error_type=type(exc).__name__)
            await asyncio.sleep(self.settings.sweep_interval_s)

    async def _run(self, job: Job, slot: Slot) -> None:
        message_id = job.turn.assistant_message_id
        out = Emitter(self.readers, self.events, message_id, flush_s=self.settings.replay_flush_s)
        outcome = Outcome(model=self.pipeline.model_name)
        watchdog = asyncio.create_task(self._watch(asyncio.current_task(), message_id, slot))
        structlog.contextvars.bind_contextvars(message_id=str(message_id))
        # However slowly the model goes, an answer ends by stream_max_s: the sweeper relies on it.
        limit = asyncio.timeout(self.settings.stream_max_s)
        metrics.CHAT_ANSWERS_RUNNING.inc()
        try:
            async with limit:
                await self.pipeline.answer(job, out, outcome)
        except asyncio.CancelledError:
            if self.closing:
                outcome.fail(
                    "shutting_down",
                    "the service restarted before the answer ended; ask again",
                    retryable=True,
                    status="interrupted",
                )
            else:
                outcome.fail(
                    "interrupted",
                    "the answer stopped because the reader left",
                    retryable=True,
                    status="interrupted",
                )
            await self.pipeline.finish(job, out, outcome)
            raise
        except Exception as exc:  # a bug must still end the stream and the stored answer
            if isinstance(exc, TimeoutError) and limit.expired():
                log.warning("chat.answer_too_long", limit_s=self.settings.stream_max_s)
                outcome.fail(
                    "answer_too_long", "the answer ran past its time limit", retryable=False
                )
            else:
                log.exception("chat.answer_crashed", error_type=type(exc).__name__)
                outcome.fail("internal_error", "the answer failed", retryable=True)
            await self.pipeline.finish(job, out, outcome)
        else:
            await self.pipeline.finish(job, out, outcome)
        finally:
            metrics.CHAT_ANSWERS_RUNNING.dec()
            watchdog.cancel()
            self.readers.drop(message_id)
            await self.slots.release(slot)

    async def _watch(self, task: asyncio.Task | None, message_id: UUID, slot: Slot) -> None:
        """While the answer runs: beat its heartbeat and renew its stream slot every
        `heartbeat_s` (the first beat went with its first event), and stop it once nobody
        listened for `detach_grace_s`."""
        alone_since: float | None = None
        beaten = time.monotonic()
        while task is not None:
            await asyncio.sleep(min(LISTENERS_EVERY_S, self.settings.heartbeat_s))
            if time.monotonic() - beaten >= self.settings.heartbeat_s:
                beaten = time.monotonic()
                try:
                    await self.events.beat(message_id)
                    await self.slots.renew(slot)
                except Exception as exc:  # Redis trouble must not kill a running answer
                    log.warning("chat.heartbeat_failed", error_type=type(exc).__name__)
            try:
                # Readers in this worker first: Redis is asked only when none is left here.
                listening = self.readers.count(message_id) or await self.events.listeners(
                    message_id
                )
            except Exception as exc:  # Redis trouble must not kill a running answer
                log.warning("chat.listeners_unknown", error_type=type(exc).__name__)
                continue
            if listening:
                alone_since = None
                continue
            alone_since = alone_since or time.monotonic()
            if time.monotonic() - alone_since >= self.settings.detach_grace_s:
                log.info("chat.abandoned", grace_s=self.settings.detach_grace_s)
                task.cancel()
                return
