"""The steps of one answer: rewrite a follow-up, retrieve and fetch the profile concurrently,
send the sources, stream the model (or the extractive answerer: offline, past the reader's
daily budget, or once the model failed before its first token; or, for a question the search
judged not covered, the plain not-covered answer without a model call), then check the
citations, store the outcome and send the last event."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
import structlog

from lectern_chat import citations, extractive, language, prompt, store, upstream
from lectern_chat.budget import TokenBudget
from lectern_chat.events import Emitter
from lectern_chat.owners import Owner
from lectern_chat.settings import ChatSettings
from lectern_chat.store import Turn
from lectern_common import metrics
from lectern_common.contracts import (
    MAX_QUERY_CHARS,
    ReaderProfile,
    SearchRequest,
    SearchResult,
)
from lectern_common.db import retry_lost_connection
from lectern_common.gemini import Gemini, LLMError, Usage
from lectern_common.http import InternalClient

log = structlog.get_logger()


@dataclass(frozen=True)
class Job:
    """One question to answer, as checked and stored when it was asked."""

    turn: Turn
    owner: Owner
    question: str
    top_k: int
    history: list[tuple[str, str]]
    started: float
    language: language.Language | None = None  # as the request asked
    payer: str | None = None  # whose daily model budget the answer spends (budget.py)


@dataclass
class Outcome:
    """What the answer became; stored when it ends, however it ends."""

    content: str = ""
    status: str = "complete"
    finish_reason: str | None = None
    query: str | None = None
    results: list[SearchResult] = field(default_factory=list)
    sources: list[dict] = field(default_factory=list)
    citations: list[int] = field(default_factory=list)
    error: dict | None = None
    timings: dict = field(default_factory=dict)
    usage: dict = field(default_factory=dict)
    model: str | None = None
    note: str | None = None
    language: str | None = None
    coverage: dict | None = None
    citation_checks: list[dict] = field(default_factory=list)
    fallback: str | None = None  # why a configured model was not used (FALLBACKS, budget)
    model_tokens: int = 0  # spent on this answer, rewrite included, charged to the budget

    def fail(self, code: str, message: str, *, retryable: bool, status: str = "failed") -> None:
        self.status, self.finish_reason = status, code
        self.error = {"code": code, "message": message, "retryable": retryable}


# The model's failures before its first token that an extractive answer replaces.
FALLBACKS = {
    "llm_rate_limited": "rate_limited",
    "llm_unavailable": "unavailable",
    "llm_error": "unavailable",
    "llm_timeout": "timeout",
}


def since_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def numbered_sources(results: list[SearchResult], snippet_chars: int) -> list[dict]:
    """The sources as the reader sees them (the `sources` event) and as they are stored."""
    return [
        {
            "n": n,
            "chapter_id": r.chapter_id,
            "title": r.title,
            "section": r.section,
            "url": r.url,
            "source_path": r.source_path,
            "score": round(r.score, 4),
            "snippet": " ".join(r.text.split())[:snippet_chars],
        }
        for n, r in enumerate(results, start=1)
    ]


def last_event(outcome: Outcome, message_id: UUID) -> tuple[str, dict]:
    """`done` with what the reader needs to show the answer, or `error`."""
    if outcome.status == "complete":
        done = {
            "message_id": str(message_id),
            "finish_reason": outcome.finish_reason,
            "citations": outcome.citations,
            "usage": outcome.usage,
            "timings_ms": outcome.timings,
            "model": outcome.model,
            "language": outcome.language,
            "citation_checks": outcome.citation_checks,
            "fallback": outcome.fallback,
        }
        if outcome.note:
            done["note"] = outcome.note
        return "done", done
    return "error", outcome.error or {}


class Pipeline:
    def __init__(
        self,
        *,
        settings: ChatSettings,
        pool: asyncpg.Pool,
        retrieval: InternalClient,
        profile: InternalClient,
        gemini: Gemini | None,
        budget: TokenBudget | None = None,
    ) -> None:
        self.settings, self.pool, self.gemini = settings, pool, gemini
        self.retrieval, self.profile, self.budget = retrieval, profile, budget

    @property
    def model_name(self) -> str:
        return self.settings.gemini_model if self.gemini else extractive.MODEL

    async def answer(self, job: Job, out: Emitter, outcome: Outcome) -> None:
        """Every event up to the last one, the answer's text and sources put in `outcome`."""
        turn = job.turn
        await out.emit(
            "meta",
            {
                "conversation_id": str(turn.conversation_id),
                "message_id": str(turn.assistant_message_id),
                "mode": turn.mode,
            },
        )
        gemini = self.gemini
        if gemini and self.budget and job.payer and await self.budget.spent(job.payer):
            gemini, outcome.fallback = None, "budget"  # not even the rewrite calls the model
        profile_task = asyncio.create_task(
            upstream.reader_profile(
                self.profile, job.owner.user_id, timeout_s=self.settings.profile_timeout_s
            )
        )
        search_language = job.language
        if language.may_need_profile(job.question, job.language):
            # Only the profile's default can say whether this question is Roman Urdu.
            search_language = getattr(await profile_task, "language", None)
        outcome.query = await self._standalone_query(
            job,
            gemini,
            outcome,
            english=language.needs_english_query(job.question, search_language),
        )
        retrieval_started = time.perf_counter()
        try:
            found = await upstream.search(
                self.retrieval,
                self._search_request(job, outcome.query),
                timeout_s=self.settings.retrieval_timeout_s,
            )
        except upstream.RetrievalFailed as exc:
            profile_task.cancel()
            outcome.timings["retrieval"] = since_ms(retrieval_started)
            if isinstance(exc, upstream.UnknownChapter):
                # A bad question, not an outage: asking again cannot help.
                outcome.fail("chapter_not_found", "the book has no such chapter", retryable=False)
            else:
                outcome.fail(
                    "retrieval_unavailable",
                    "the book search is unavailable right now; try again shortly",
                    retryable=True,
                )
            return
        outcome.timings["retrieval"] = since_ms(retrieval_started)
        outcome.results = found.results
        outcome.sources = numbered_sources(outcome.results, self.settings.snippet_chars)
        outcome.coverage = found.coverage.model_dump()
        await out.emit(
            "sources", {"sources": outcome.sources, "coverage": found.coverage.model_dump()}
        )
        metrics.CHAT_TIME_TO_SOURCES.observe(time.perf_counter() - job.started)
        if found.coverage.verdict == "not_covered" and not profile_task.done():
            profile_task.cancel()  # no model call to personalise: only a known language counts
            reader_profile = None
        else:
            reader_profile = await profile_task
        outcome.language = language.answer_language(
            job.question,
            requested=job.language,
            profile_default=getattr(reader_profile, "language", None),
        )
        if found.coverage.verdict == "not_covered":
            await self._not_covered(job, out, outcome)
            return
        if gemini is None:
            await self._extract(job, out, outcome)
        else:
            await self._generate(gemini, job, out, outcome, reader_profile)

    async def _standalone_query(
        self, job: Job, gemini: Gemini | None, outcome: Outcome, *, english: bool = False
    ) -> str:
        """A follow-up rewritten with the history into a query that stands alone; a question
        that is not `english` also put into English (the book's language), in the same call."""
        if not job.history and not english:
            return job.question
        if gemini is None:
            # No model: the previous question carries the context the follow-up refers to.
            last_question = next(
                (text for role, text in reversed(job.history) if role == "user"), ""
            )
            return f"{last_question} {job.question}".strip()[:1000]
        if job.history:
            system = prompt.REWRITE_SYSTEM
            message = prompt.rewrite_message(
                history=job.history,
                question=job.question,
                history_chars=self.settings.history_chars,
            )
        else:
            system = language.TRANSLATE_SYSTEM
            message = f"Question: {job.question}\n\nEnglish search query:"
        usage = Usage()
        try:
            text = await asyncio.wait_for(
                gemini.generate(message, system=system, max_tokens=128, usage=usage),
                self.settings.rewrite_timeout_s,
            )
        except (LLMError, TimeoutError) as exc:
            log.warning("chat.rewrite_failed", error_type=type(exc).__name__)
            return job.question
        finally:
            outcome.model_tokens += usage.prompt_tokens + usage.output_tokens
        return prompt.cleaned_query(text) or job.question

    @staticmethod
    def _search_request(job: Job, query: str) -> SearchRequest:
        """The query, with the start of the selected passage when there is one."""
        selected = job.turn.selected_text
        text = f"{query}\n{selected[:800]}" if selected else query
        return SearchRequest(
            query=text[:MAX_QUERY_CHARS], top_k=job.top_k, chapter_id=job.turn.chapter_id
        )

    async def _generate(
        self,
        gemini: Gemini,
        job: Job,
        out: Emitter,
        outcome: Outcome,
        reader_profile: ReaderProfile | None,
    ) -> None:
        system = prompt.system_instruction(
            profile=reader_profile,
            selection=job.turn.selected_text is not None,
            language=outcome.language,
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
                    metrics.CHAT_TIME_TO_FIRST_TOKEN.observe(time.perf_counter() - job.started)
                outcome.content += text
                await out.emit("token", {"text": text})
        except LLMError as exc:
            if not outcome.content:
                # Nothing shown yet and the retries are spent: quote the book instead.
                outcome.fallback = FALLBACKS.get(exc.code, "unavailable")
                log.warning("chat.model_fallback", code=exc.code, attempts=usage.attempts)
            else:
                outcome.fail(exc.code, exc.message, retryable=exc.retryable)
        finally:
            outcome.usage = usage.as_dict()
            outcome.model_tokens += usage.prompt_tokens + usage.output_tokens
        if outcome.fallback:
            await self._extract(job, out, outcome)
            outcome.usage["attempts"] = usage.attempts
        elif outcome.status == "complete":
            outcome.finish_reason = "stop"
            outcome.citations = prompt.citations(outcome.content, len(outcome.sources))

    async def _extract(self, job: Job, out: Emitter, outcome: Outcome) -> None:
        """The extractive answer: offline, or in place of a model that cannot be used
        (`outcome.fallback` says why, and its note says so to the reader)."""
        question = " ".join(filter(None, (outcome.query, job.turn.selected_text)))
        note = extractive.FALLBACK_NOTES[outcome.fallback] if outcome.fallback else extractive.NOTE
        result = extractive.answer(
            question,
            outcome.results,
            min_score=self.settings.extractive_min_score,
            max_sentences=self.settings.extractive_max_sentences,
            note=note,
        )
        for piece in extractive.pieces(result.text):
            if not outcome.content:
                outcome.timings["first_token"] = since_ms(job.started)
            outcome.content += piece
            await out.emit("token", {"text": piece})
        outcome.finish_reason = "extractive" if result.covered else "not_covered"
        # The nearest sections a not-covered answer names are pointers, not evidence.
        if result.covered:
            outcome.citations = prompt.citations(outcome.content, len(outcome.sources))
        outcome.usage = Usage().as_dict()
        outcome.note = note
        outcome.model = extractive.MODEL

    async def _not_covered(self, job: Job, out: Emitter, outcome: Outcome) -> None:
        """The search judged the book does not cover the question: say so and point to the
        nearest sections, with no model call (it would cost and could only invent)."""
        text = extractive.not_covered(outcome.results)
        if outcome.language == "ur":
            text = f"{language.NOT_COVERED_UR}\n\n{text}"
        if self.gemini is None:
            text = f"{extractive.NOTE}\n\n{text}"
            outcome.note = extractive.NOTE
        for piece in extractive.pieces(text):
            if not outcome.content:
                outcome.timings["first_token"] = since_ms(job.started)
            outcome.content += piece
            await out.emit("token", {"text": piece})
        outcome.finish_reason = "not_covered"
        outcome.model = extractive.MODEL
        outcome.usage = Usage().as_dict()

    async def finish(self, job: Job, out: Emitter, outcome: Outcome) -> None:
        """Store the answer first (a reader who sees `done` and reloads finds it), then send
        the last event."""
        if outcome.status == "complete" and outcome.finish_reason != "not_covered":
            checks_started = time.perf_counter()
            outcome.citation_checks = [
                c.as_dict()
                for c in citations.check(outcome.content, [r.text for r in outcome.results])
            ]
            outcome.timings["checks"] = round((time.perf_counter() - checks_started) * 1000, 2)
        if self.budget and job.payer and outcome.model_tokens:
            await self.budget.charge(job.payer, outcome.model_tokens)
        outcome.timings["total"] = since_ms(job.started)
        outcome.timings.setdefault("first_token", None)
        outcome.timings.setdefault("retrieval", None)
        message_id = job.turn.assistant_message_id
        try:
            # The reader has seen the answer: a connection lost under its UPDATE (a PostgreSQL
            # restart) is tried again for a few seconds before the answer ends in an error.
            await retry_lost_connection(
                lambda: store.finish_message(
                    self.pool,
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
                    language=outcome.language,
                    coverage=outcome.coverage,
                    citation_checks=outcome.citation_checks,
                    fallback=outcome.fallback,
                ),
                what="chat.finish_message",
            )
        except Exception as exc:
            log.exception("chat.store_failed", error_type=type(exc).__name__)
            if outcome.status == "complete":
                outcome.fail("storage_failed", "the answer could not be saved", retryable=True)
        metrics.CHAT_ANSWERS.labels(outcome.status, outcome.model or "").inc()
        # `timings` is one field: a key like first_token_ms would be redacted as a secret.
        log.info(
            "chat.answer_done",
            status=outcome.status,
            finish_reason=outcome.finish_reason,
            sources=len(outcome.sources),
            citations=outcome.citations,
            unsupported=sum(not c["supported"] for c in outcome.citation_checks),
            fallback=outcome.fallback,
            chars=len(outcome.content),
            timings=outcome.timings,
        )
        try:
            await out.emit(*last_event(outcome, message_id))
        except Exception as exc:  # listeners end on their idle limit
            log.exception("chat.emit_failed", error_type=type(exc).__name__)
