"""How long an answer lives: each runs as its own task, detached from the HTTP request that
asked for it, until it ends, runs past `stream_max_s`, is abandoned (nobody listened for
`detach_grace_s`) or the worker shuts down; however it ends, what was produced is stored. The
sweeper marks the answers of workers that died as failed.

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
from lectern_chat.slots import StreamSlots
from lectern_common.tasks import BackgroundTasks

log = structlog.get_logger()

# How often a running answer checks whether anybody still listens.
LISTENERS_EVERY_S = 0.5
# An answer found still streaming this long after the longest an answer may run is dead.
SWEEP_MARGIN_S = 30


class Answers:
    """The answers running in this worker, held by `tasks` (drained at shutdown: each answer
    cancelled then stores `interrupted`)."""

    def __init__(
        self,
        *,
        settings: ChatSettings,
        pipeline: Pipeline,
        events: EventLog,
        slots: StreamSlots,
        tasks: BackgroundTasks,
    ) -> None:
        self.settings, self.pipeline, self.events = settings, pipeline, events
        self.slots, self.tasks = slots, tasks
        self.readers = LocalReaders()

    def start(self, job: Job) -> AsyncIterator[list[Event]]:
        """Start answering `job` (its owner's stream slot already taken, released when the
        answer ends) and return its events for the request that asked."""
        message_id = job.turn.assistant_message_id
        # Attached before the answer starts, so no event is missed and it is never "abandoned".
        queue = self.readers.attach(message_id)
        try:
            self.tasks.spawn(self._run(job), name=f"chat.answer.{message_id}")
        except BaseException:
            self.readers.detach(message_id, queue)
            raise
        return self.readers.follow(
            message_id,
            queue,
            idle_s=self.settings.resume_idle_s,
            keepalive_s=self.settings.sse_keepalive_s,
        )

    async def _run(self, job: Job) -> None:
        message_id = job.turn.assistant_message_id
        out = Emitter(self.readers, self.events, message_id, flush_s=self.settings.replay_flush_s)
        outcome = Outcome(model=self.pipeline.model_name)
        watchdog = asyncio.create_task(
            self._stop_when_abandoned(asyncio.current_task(), message_id)
        )
        structlog.contextvars.bind_contextvars(message_id=str(message_id))
        # However slowly the model goes, an answer ends by stream_max_s: the sweeper relies on it.
        limit = asyncio.timeout(self.settings.stream_max_s)
        try:
            async with limit:
                await self.pipeline.answer(job, out, outcome)
        except asyncio.CancelledError:
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
            watchdog.cancel()
            self.readers.drop(message_id)
            await self.slots.release(job.owner)

    async def _stop_when_abandoned(self, task: asyncio.Task | None, message_id: UUID) -> None:
        alone_since: float | None = None
        while task is not None:
            await asyncio.sleep(LISTENERS_EVERY_S)
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


async def sweep_forever(pool: asyncpg.Pool, settings: ChatSettings) -> None:
    """Mark answers whose worker died mid-stream (still `streaming` well past the longest an
    answer may run) as failed, now and every `sweep_interval_s`, in every worker: the update is
    idempotent and touches only such rows."""
    older_than_s = settings.stream_max_s + SWEEP_MARGIN_S
    while True:
        try:
            swept = await store.sweep_dead_answers(pool, older_than_s)
            if swept:
                log.warning("chat.dead_answers_swept", count=swept)
        except Exception as exc:  # the database may be away for a while; try again later
            log.warning("chat.sweep_failed", error_type=type(exc).__name__)
        await asyncio.sleep(settings.sweep_interval_s)
