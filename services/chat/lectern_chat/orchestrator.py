"""The answer pipeline: rewrite a follow-up, retrieve and fetch the profile concurrently, send
the sources, stream the model (or the extractive answerer), and store the outcome.

Each answer runs as its own task, detached from the HTTP request that asked for it: events go
to the answer's Redis log and every listener (the first request, or a resumed one on any
worker) reads them from there. When nobody has listened for `detach_grace_s`, the task is
cancelled and what was produced is stored as `interrupted`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from uuid import UUID

import structlog
from prometheus_client import Counter, Histogram
from redis.asyncio import Redis

from lectern_chat import extractive, prompt, store
from lectern_chat.events import Event, EventLog, LocalReaders
from lectern_chat.owners import Owner
from lectern_chat.settings import ChatSettings
from lectern_chat.store import Turn
from lectern_common.gemini import Gemini, LLMError, Usage
from lectern_common.http import InternalClient, ServiceUnavailable
from lectern_common.stores import Stores

log = structlog.get_logger()

ANSWERS = Counter("lectern_chat_answers_total", "Answers by outcome", ["status", "model"])
TIME_TO_SOURCES = Histogram(
    "lectern_chat_time_to_sources_seconds",
    "From the question to the sources event",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)
TIME_TO_FIRST_TOKEN = Histogram(
    "lectern_chat_time_to_first_token_seconds",
    "From the question to the first answer text",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30),
)


class RetrievalFailed(Exception):
    """The book search could not be used for this answer."""


@dataclass(frozen=True)
class Job:
    """One question to answer, as validated and stored by the stream route."""

    turn: Turn
    owner: Owner
    question: str
    top_k: int
    history: list[tuple[str, str]]
    started: float


@dataclass
class Outcome:
    """What the answer became; stored when it ends, however it ends."""

    content: str = ""
    status: str = "complete"
    finish_reason: str | None = None
    query: str | None = None
    results: list[dict] = field(default_factory=list)
    sources: list[dict] = field(default_factory=list)
    citations: list[int] = field(default_factory=list)
    error: dict | None = None
    timings: dict = field(default_factory=dict)
    usage: dict = field(default_factory=dict)
    model: str | None = None
    note: str | None = None

    def fail(self, code: str, message: str, *, retryable: bool, status: str = "failed") -> None:
        self.status, self.finish_reason = status, code
        self.error = {"code": code, "message": message, "retryable": retryable}


class Emitter:
    """Numbers the events of one answer and hands each to the readers attached in this worker
    at once. The Redis log (for readers resuming anywhere) is written behind, in batches at
    most every `flush_s`, so the answer never waits on it; the last event waits until the
    whole log is written."""

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
        self.readers.publish(self.message_id, event)
        self._unwritten.append(event)
        if event.terminal:
            self._flush_now.set()
            if self._writer is not None and not self._writer.done():
                await self._writer  # it writes what is left, this event included
            else:
                await self._write()
        elif self._writer is None or self._writer.done():
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


def since_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def numbered_sources(results: list[dict], snippet_chars: int) -> list[dict]:
    return [
        {
            "n": n,
            "chapter_id": r["chapter_id"],
            "title": r["title"],
            "section": r["section"],
            "url": r["url"],
            "source_path": r["source_path"],
            "score": round(float(r["score"]), 4),
            "snippet": " ".join(r["text"].split())[:snippet_chars],
        }
        for n, r in enumerate(results, start=1)
    ]


class Orchestrator:
    def __init__(
        self,
        *,
        settings: ChatSettings,
        stores: Stores,
        redis: Redis,
        events: EventLog,
        retrieval: InternalClient,
        profile: InternalClient,
        gemini: Gemini | None,
    ) -> None:
        self.settings, self.stores, self.redis, self.events = settings, stores, redis, events
        self.retrieval, self.profile, self.gemini = retrieval, profile, gemini
        self.readers = LocalReaders()
        self.tasks: set[asyncio.Task] = set()

    @property
    def model_name(self) -> str:
        return self.settings.gemini_model if self.gemini else extractive.MODEL

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self, job: Job) -> None:
        task = asyncio.get_running_loop().create_task(self.run(job))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def aclose(self) -> None:
        """Stop answers still running (a shutting-down worker); each stores what it has."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def run(self, job: Job) -> None:
        message_id = job.turn.assistant_message_id
        out = Emitter(self.readers, self.events, message_id, flush_s=self.settings.replay_flush_s)
        outcome = Outcome(model=self.model_name)
        watchdog = asyncio.create_task(self._stop_when_abandoned(asyncio.current_task(), job))
        structlog.contextvars.bind_contextvars(message_id=str(message_id))
        # However slowly the model goes, an answer ends by stream_max_s: the sweeper relies on it.
        limit = asyncio.timeout(self.settings.stream_max_s)
        try:
            async with limit:
                await self._answer(job, out, outcome)
        except asyncio.CancelledError:
            outcome.fail(
                "interrupted",
                "the answer stopped because the reader left",
                retryable=True,
                status="interrupted",
            )
            await self._finish(job, out, outcome)
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
            await self._finish(job, out, outcome)
        else:
            await self._finish(job, out, outcome)
        finally:
            watchdog.cancel()
            self.readers.drop(message_id)
            await self.release_slot(job.owner)

    async def _stop_when_abandoned(self, task: asyncio.Task | None, job: Job) -> None:
        message_id = job.turn.assistant_message_id
        alone_since: float | None = None
        while task is not None:
            await asyncio.sleep(0.5)
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

    # ---- the pipeline ---------------------------------------------------------------------
    async def _answer(self, job: Job, out: Emitter, outcome: Outcome) -> None:
        turn = job.turn
        await out.emit(
            "meta",
            {
                "conversation_id": str(turn.conversation_id),
                "message_id": str(turn.assistant_message_id),
                "mode": turn.mode,
            },
        )
        outcome.query = await self._standalone_query(job)
        profile_task = asyncio.create_task(self._profile(job.owner))
        retrieval_started = time.perf_counter()
        try:
            outcome.results = await self._search(job, outcome.query)
        except RetrievalFailed:
            profile_task.cancel()
            outcome.timings["retrieval"] = since_ms(retrieval_started)
            outcome.fail(
                "retrieval_unavailable",
                "the book search is unavailable right now; try again shortly",
                retryable=True,
            )
            return
        outcome.timings["retrieval"] = since_ms(retrieval_started)
        outcome.sources = numbered_sources(outcome.results, self.settings.snippet_chars)
        await out.emit("sources", {"sources": outcome.sources})
        TIME_TO_SOURCES.observe(time.perf_counter() - job.started)
        reader_profile = await profile_task
        if self.gemini is None:
            await self._extract(job, out, outcome)
        else:
            await self._generate(self.gemini, job, out, outcome, reader_profile)

    async def _standalone_query(self, job: Job) -> str:
        """A follow-up rewritten with the history into a query that stands alone."""
        if not job.history:
            return job.question
        if self.gemini is None:
            # No model: the previous question carries the context the follow-up refers to.
            last_question = next(
                (text for role, text in reversed(job.history) if role == "user"), ""
            )
            return f"{last_question} {job.question}".strip()[:1000]
        message = prompt.rewrite_message(
            history=job.history, question=job.question, history_chars=self.settings.history_chars
        )
        try:
            text = await asyncio.wait_for(
                self.gemini.generate(message, system=prompt.REWRITE_SYSTEM, max_tokens=128),
                self.settings.rewrite_timeout_s,
            )
        except (LLMError, TimeoutError) as exc:
            log.warning("chat.rewrite_failed", error_type=type(exc).__name__)
            return job.question
        return prompt.cleaned_query(text) or job.question

    async def _search(self, job: Job, query: str) -> list[dict]:
        selected = job.turn.selected_text
        text = f"{query}\n{selected[:800]}" if selected else query
        body = {"query": text[:2000], "top_k": job.top_k, "chapter_id": job.turn.chapter_id}
        try:
            response = await self.retrieval.post(
                "/internal/search",
                json=body,
                retry_posts=True,
                timeout_s=self.settings.retrieval_timeout_s,
            )
            if response.status_code != 200:
                log.warning("chat.retrieval_failed", status=response.status_code)
                raise RetrievalFailed
            return response.json()["results"][: job.top_k]
        except (ServiceUnavailable, ValueError, KeyError) as exc:
            # Unreachable, cut off mid-answer or an unreadable reply: no sources either way.
            log.warning("chat.retrieval_failed", error_type=type(exc).__name__)
            raise RetrievalFailed from exc

    async def _profile(self, owner: Owner) -> dict | None:
        """The reader's profile, or None (guest, no profile, or profile service trouble:
        an answer without personalisation beats no answer)."""
        if owner.user_id is None:
            return None
        try:
            response = await self.profile.get(
                f"/internal/profiles/{owner.user_id}", timeout_s=self.settings.profile_timeout_s
            )
            if response.status_code == 200:
                return response.json()
        except (ServiceUnavailable, ValueError) as exc:
            log.warning("chat.profile_failed", error_type=type(exc).__name__)
            return None
        if response.status_code != 404:
            log.warning("chat.profile_failed", status=response.status_code)
        return None

    async def _generate(
        self, gemini: Gemini, job: Job, out: Emitter, outcome: Outcome, reader_profile: dict | None
    ) -> None:
        system = prompt.system_instruction(
            profile=reader_profile, selection=job.turn.selected_text is not None
        )
        contents = prompt.contents(
            history=job.history,
            question=job.question,
            results=outcome.results,
            selected_text=job.turn.selected_text,
            history_chars=self.settings.history_chars,
        )
        usage = Usage()
        try:
            async for text in gemini.stream(contents, system=system, usage=usage):
                if not outcome.content:
                    outcome.timings["first_token"] = since_ms(job.started)
                    TIME_TO_FIRST_TOKEN.observe(time.perf_counter() - job.started)
                outcome.content += text
                await out.emit("token", {"text": text})
        except LLMError as exc:
            outcome.fail(exc.code, exc.message, retryable=exc.retryable)
        finally:
            outcome.usage = usage.as_dict()
        if outcome.status == "complete":
            outcome.finish_reason = "stop"
            outcome.citations = prompt.citations(outcome.content, len(outcome.sources))

    async def _extract(self, job: Job, out: Emitter, outcome: Outcome) -> None:
        question = " ".join(filter(None, (outcome.query, job.turn.selected_text)))
        result = extractive.answer(
            question,
            outcome.results,
            min_score=self.settings.extractive_min_score,
            max_sentences=self.settings.extractive_max_sentences,
        )
        for piece in extractive.pieces(result.text):
            if not outcome.content:
                outcome.timings["first_token"] = since_ms(job.started)
            outcome.content += piece
            await out.emit("token", {"text": piece})
        outcome.finish_reason = "extractive" if result.covered else "not_covered"
        outcome.citations = prompt.citations(outcome.content, len(outcome.sources))
        outcome.usage = Usage().as_dict()
        outcome.note = extractive.NOTE

    # ---- the end --------------------------------------------------------------------------
    async def _finish(self, job: Job, out: Emitter, outcome: Outcome) -> None:
        """Store the answer first (a reader who sees `done` and reloads finds it), then send
        the last event."""
        outcome.timings["total"] = since_ms(job.started)
        outcome.timings.setdefault("first_token", None)
        outcome.timings.setdefault("retrieval", None)
        message_id = job.turn.assistant_message_id
        try:
            await store.finish_message(
                self.stores.pool,
                message_id,
                content=outcome.content,
                status=outcome.status,
                finish_reason=outcome.finish_reason,
                query=outcome.query,
                sources=outcome.sources,
                citations=outcome.citations,
                error=outcome.error,
                timings=outcome.timings,
                usage=outcome.usage,
                model=outcome.model,
            )
        except Exception as exc:
            log.exception("chat.store_failed", error_type=type(exc).__name__)
            if outcome.status == "complete":
                outcome.fail("storage_failed", "the answer could not be saved", retryable=True)
        ANSWERS.labels(outcome.status, outcome.model or "").inc()
        # `timings` is one field: a key like first_token_ms would be redacted as a secret.
        log.info(
            "chat.answer_done",
            status=outcome.status,
            finish_reason=outcome.finish_reason,
            sources=len(outcome.sources),
            citations=outcome.citations,
            chars=len(outcome.content),
            timings=outcome.timings,
        )
        try:
            await out.emit(*self._last_event(outcome, message_id))
        except Exception as exc:  # listeners end on their idle limit
            log.exception("chat.emit_failed", error_type=type(exc).__name__)

    @staticmethod
    def _last_event(outcome: Outcome, message_id: UUID) -> tuple[str, dict]:
        if outcome.status == "complete":
            done = {
                "message_id": str(message_id),
                "finish_reason": outcome.finish_reason,
                "citations": outcome.citations,
                "usage": outcome.usage,
                "timings_ms": outcome.timings,
                "model": outcome.model,
            }
            if outcome.note:
                done["note"] = outcome.note
            return "done", done
        return "error", outcome.error or {}

    async def sweep_forever(self) -> None:
        """Mark answers whose worker died mid-stream (still `streaming` well past the longest
        an answer may run) as failed, now and every `sweep_interval_s`, in every worker: the
        update is idempotent and touches only such rows."""
        older_than_s = self.settings.stream_max_s + 30
        while True:
            try:
                swept = await store.sweep_dead_answers(self.stores.pool, older_than_s)
                if swept:
                    log.warning("chat.dead_answers_swept", count=swept)
            except Exception as exc:  # the database may be away for a while; try again later
                log.warning("chat.sweep_failed", error_type=type(exc).__name__)
            await asyncio.sleep(self.settings.sweep_interval_s)

    # ---- open streams per owner -----------------------------------------------------------
    def _slot_key(self, owner: Owner) -> str:
        return self.stores.keys("chat", "open", owner.key)

    async def take_slot(self, owner: Owner) -> bool:
        """Count an open answer for this owner; False when they already have too many."""
        key = self._slot_key(owner)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, self.settings.stream_max_s)
            count, _ = await pipe.execute()
        if count > self.settings.max_open_streams:
            await self.redis.decr(key)
            return False
        return True

    async def release_slot(self, owner: Owner) -> None:
        try:
            await self.redis.decr(self._slot_key(owner))
        except Exception as exc:  # the key expires on its own
            log.warning("chat.slot_release_failed", error_type=type(exc).__name__)
