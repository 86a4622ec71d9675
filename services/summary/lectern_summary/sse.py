"""The SSE form of a personalized or translated chapter, with the chat's event names: `meta`,
`token`*, then `done` or `error`, each with a monotonic `id:`. The generation runs in its own
task held by the service's `BackgroundTasks`, so a reader who leaves does not cancel a text
other readers are waiting for."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import structlog
from fastapi.responses import StreamingResponse

from lectern_common.errors import DEPENDENCY_ERRORS, ApiError, dependency_error, shutting_down
from lectern_common.llm import LLMError
from lectern_common.sse import KEEPALIVE, event_frame, sse_response
from lectern_common.tasks import BackgroundTasks
from lectern_summary.generation import Generator, Outcome
from lectern_summary.writer import Job

log = structlog.get_logger()


def _paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"(?<=\n\n)", text) if p]


def _error_data(exc: BaseException) -> dict:
    if (unavailable := dependency_error(exc)) is not None:
        return unavailable.event_data()
    if isinstance(exc, LLMError):
        return {"code": exc.code, "message": exc.message, "retryable": exc.retryable}
    if isinstance(exc, ApiError):
        retryable = bool((exc.details or {}).get("retryable", exc.status >= 500))
        return {"code": exc.code, "message": exc.message, "retryable": retryable}
    return {"code": "internal_error", "message": "internal error", "retryable": True}


async def _events(
    generator: Generator,
    job: Job,
    meta: dict,
    tasks: BackgroundTasks,
    keepalive_s: float,
    stop: asyncio.Event,
) -> AsyncIterator[bytes]:
    started = time.perf_counter()
    queue: asyncio.Queue[str] = asyncio.Queue()
    task = tasks.spawn(generator.obtain(job, emit=queue.put_nowait), name=f"generate:{job.kind}")
    n = 1
    yield event_frame(n, "meta", meta)
    first_token_ms = None
    getter: asyncio.Future[str] | None = None
    stopped = asyncio.ensure_future(stop.wait())
    try:
        while True:
            if getter is None:
                getter = asyncio.ensure_future(queue.get())
            waited: set[asyncio.Future[Any]] = {getter, task, stopped}
            done, _ = await asyncio.wait(
                waited, timeout=keepalive_s, return_when=asyncio.FIRST_COMPLETED
            )
            if getter.done():
                first_token_ms = first_token_ms or round((time.perf_counter() - started) * 1000)
                n += 1
                yield event_frame(n, "token", {"text": getter.result()})
                getter = None
            elif task.done():
                if queue.empty():  # the generation ended and all it emitted has been sent
                    getter.cancel()
                    break
            elif stopped.done():
                # The service is shutting down and its grace is over: say so, retryably.
                getter.cancel()
                log.warning("summary.stream_stopped_at_shutdown", kind=str(job.kind))
                yield event_frame(n + 1, "error", _error_data(shutting_down()))
                return
            elif not done:
                # While this request waits for another's generation nothing else is sent; a
                # comment keeps proxies and the reader's idle timer from giving up.
                yield KEEPALIVE
    finally:
        stopped.cancel()
    if (exc := task.exception()) is not None:
        if not isinstance(exc, (LLMError, ApiError, *DEPENDENCY_ERRORS)):
            log.error("summary.stream_failed", error_type=type(exc).__name__)
        yield event_frame(n + 1, "error", _error_data(exc))
        return
    outcome: Outcome = task.result()
    if not outcome.streamed:
        # Served from the cache or by another request's generation: the whole text at once.
        first_token_ms = round((time.perf_counter() - started) * 1000)
        for piece in _paragraphs(outcome.text):
            n += 1
            yield event_frame(n, "token", {"text": piece})
    yield event_frame(
        n + 1,
        "done",
        {
            "finish_reason": "stop",
            "cached": outcome.cached,
            "model": outcome.model,
            "generated_at": outcome.generated_at.isoformat() if outcome.generated_at else None,
            "timings_ms": {
                "first_token": first_token_ms,
                "total": round((time.perf_counter() - started) * 1000),
            },
        },
    )


def stream_response(
    generator: Generator,
    job: Job,
    meta: dict,
    *,
    tasks: BackgroundTasks,
    keepalive_s: float,
    stop: asyncio.Event,
) -> StreamingResponse:
    return sse_response(_events(generator, job, meta, tasks, keepalive_s, stop))
