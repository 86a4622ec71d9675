"""Generate-once: serve a stored text, or generate it (one model call across all replicas) and
store it; or, with no Gemini key, build the extractive fallback without touching the cache."""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import structlog

from lectern_common import metrics
from lectern_common.errors import ApiError
from lectern_common.llm import LLMError
from lectern_summary import extractive, prompts, store
from lectern_summary.flight import Failure, Flight, Lock
from lectern_summary.schemas import Kind
from lectern_summary.settings import SummarySettings
from lectern_summary.store import CacheKey, Stored
from lectern_summary.writer import Emit, Job, Writer

log = structlog.get_logger()


@dataclass(frozen=True)
class Outcome:
    text: str
    cached: bool
    model: str
    generated_at: datetime | None
    streamed: bool = False  # the text already went out piece by piece through `emit`


class GenerationPending(ApiError):
    def __init__(self) -> None:
        super().__init__(
            504,
            "generation_pending",
            "the text is still being generated, try again shortly",
            details={"retryable": True},
        )


def _from_cache(stored: Stored) -> Outcome:
    return Outcome(stored.body, True, stored.model, stored.generated_at)


def _lock_item(key: CacheKey) -> str:
    return hashlib.sha256("\x1f".join(key.params()).encode()).hexdigest()


class Generator:
    def __init__(
        self,
        *,
        settings: SummarySettings,
        pool: asyncpg.Pool,
        flight: Flight,
        writer: Writer | None,
    ) -> None:
        self.settings, self.pool, self.flight, self.writer = settings, pool, flight, writer
        for kind in Kind:  # each series at zero from the start: a hit rate before any miss
            metrics.SUMMARY_FLIGHT_WAITS.labels(kind.value)
            for result in ("hit", "miss"):
                metrics.SUMMARY_CACHE.labels(kind.value, result)

    def key(self, job: Job) -> CacheKey:
        return CacheKey(
            job.chapter.id,
            job.chapter.content_hash,
            job.kind.value,
            job.audience,
            self.settings.gemini_model,
            prompts.PROMPT_VERSION,
        )

    async def obtain(self, job: Job, emit: Emit | None = None) -> Outcome:
        """The text for `job`: from the cache, from the replica already generating it, or
        generated here. Raises LLMError when the generation this request relied on failed."""
        if self.writer is None:
            metrics.SUMMARY_OUTCOMES.labels(job.kind.value, "offline").inc()
            return self._offline(job)
        key = self.key(job)
        if hit := await store.touch(self.pool, key):
            metrics.SUMMARY_CACHE.labels(job.kind.value, "hit").inc()
            metrics.SUMMARY_OUTCOMES.labels(job.kind.value, "cached").inc()
            return _from_cache(hit)
        metrics.SUMMARY_CACHE.labels(job.kind.value, "miss").inc()
        item = _lock_item(key)
        deadline = time.monotonic() + self.settings.wait_timeout_s
        while True:
            if (lock := await self.flight.acquire(item)) is not None:
                return await self._lead(self.writer, job, key, lock, emit)
            metrics.SUMMARY_FLIGHT_WAITS.labels(job.kind.value).inc()
            await self._wait_for(item, deadline)
            if hit := await store.touch(self.pool, key):
                metrics.SUMMARY_OUTCOMES.labels(job.kind.value, "waited").inc()
                return _from_cache(hit)

    async def _wait_for(self, item: str, deadline: float) -> None:
        """Wait until nobody holds the lock; raise the holder's failure if it failed."""
        token = None
        while (current := await self.flight.holder(item)) is not None:
            token = current
            if time.monotonic() > deadline:
                raise GenerationPending
            await asyncio.sleep(self.settings.wait_poll_s)
        if token and (failure := await self.flight.failure_of(token)):
            raise LLMError(failure.code, failure.message, retryable=failure.retryable)

    async def _lead(
        self, writer: Writer, job: Job, key: CacheKey, lock: Lock, emit: Emit | None
    ) -> Outcome:
        try:
            # Another replica may have stored it between our cache miss and taking the lock.
            if hit := await store.touch(self.pool, key):
                metrics.SUMMARY_OUTCOMES.labels(job.kind.value, "waited").inc()
                return _from_cache(hit)
            started = time.perf_counter()
            async with self.flight.held(lock):
                text, usage = await writer.write(job, emit)
            stored = await store.save(self.pool, key, text, usage)
            metrics.SUMMARY_OUTCOMES.labels(job.kind.value, "generated").inc()
            log.info(
                "summary.generated",
                chapter_id=key.chapter_id,
                kind=key.kind,
                audience=key.audience,
                chars=len(text),
                calls=usage["calls"],
                ms=round((time.perf_counter() - started) * 1000),
            )
            return Outcome(
                stored.body, False, stored.model, stored.generated_at, streamed=emit is not None
            )
        except LLMError as exc:
            metrics.SUMMARY_OUTCOMES.labels(job.kind.value, "failed").inc()
            log.warning(
                "summary.generation_failed", chapter_id=key.chapter_id, kind=key.kind, code=exc.code
            )
            await self.flight.note_failure(lock, Failure(exc.code, exc.message, exc.retryable))
            raise
        finally:
            await self.flight.release(lock)

    def _offline(self, job: Job) -> Outcome:
        if job.kind is Kind.summary:
            return Outcome(extractive.summary(job.chapter), False, extractive.MODEL, None)
        if job.kind is Kind.personalized:
            return Outcome(extractive.personalized(job.chapter), False, extractive.MODEL, None)
        raise ApiError(
            503,
            "llm_unavailable",
            "translation needs the language model, which is not configured",
            details={"retryable": False},
        )
