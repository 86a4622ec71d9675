"""HTTP routes of the summary service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import StreamingResponse

from lectern_common.contracts import CHAPTER_ID_PATTERN
from lectern_common.errors import ApiError, shutting_down
from lectern_common.identity import Reader
from lectern_common.llm import LLMError
from lectern_summary.generation import Generator, Outcome
from lectern_summary.schemas import ChapterVersionOut, Kind, SummaryOut, TranslationIn
from lectern_summary.sse import stream_response
from lectern_summary.state import SummaryState
from lectern_summary.upstream import fetch_chapter, reader_segment
from lectern_summary.writer import Job

router = APIRouter(prefix="/api/summary", tags=["summary"])

ChapterId = Annotated[str, Path(pattern=CHAPTER_ID_PATTERN)]

# How a failed model call reaches a JSON client.
_LLM_STATUS = {"llm_timeout": 504, "llm_rate_limited": 503, "llm_unavailable": 502}


async def summary_state(request: Request) -> SummaryState:
    return request.state.summary


State = Annotated[SummaryState, Depends(summary_state)]


def wants_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


async def obtain(generator: Generator, job: Job) -> Outcome:
    try:
        return await generator.obtain(job)
    except LLMError as exc:
        raise ApiError(
            _LLM_STATUS.get(exc.code, 502),
            exc.code,
            exc.message,
            details={"retryable": exc.retryable},
        ) from exc


async def chapter_version(
    state: SummaryState, request: Request, job: Job
) -> ChapterVersionOut | StreamingResponse:
    if wants_stream(request):
        if state.draining:  # SIGTERM: this process starts no new stream
            raise shutting_down()
        meta = {
            "chapter_id": job.chapter.id,
            "kind": job.kind.value,
            "audience": job.audience,
            "title": job.chapter.title,
        }
        return stream_response(
            state.generator,
            job,
            meta,
            tasks=state.background,
            keepalive_s=state.settings.sse_keepalive_s,
            stop=state.stopping,
        )
    outcome = await obtain(state.generator, job)
    return ChapterVersionOut(
        chapter_id=job.chapter.id,
        kind=job.kind,
        audience=job.audience,
        text=outcome.text,
        cached=outcome.cached,
        model=outcome.model,
        generated_at=outcome.generated_at,
    )


@router.get("/chapters/{chapter_id}")
async def chapter_summary(chapter_id: ChapterId, state: State) -> SummaryOut:
    chapter = await fetch_chapter(state.retrieval, chapter_id)
    outcome = await obtain(state.generator, Job(chapter, Kind.summary))
    return SummaryOut(
        chapter_id=chapter.id,
        summary=outcome.text,
        cached=outcome.cached,
        model=outcome.model,
        generated_at=outcome.generated_at,
    )


@router.post(
    "/chapters/{chapter_id}/personalized",
    response_model=ChapterVersionOut,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def personalized_chapter(
    chapter_id: ChapterId, reader: Reader, state: State, request: Request
) -> ChapterVersionOut | StreamingResponse:
    segment = await reader_segment(state.profile, reader)
    chapter = await fetch_chapter(state.retrieval, chapter_id)
    return await chapter_version(state, request, Job(chapter, Kind.personalized, segment))


@router.post(
    "/chapters/{chapter_id}/translation",
    response_model=ChapterVersionOut,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def translated_chapter(
    chapter_id: ChapterId, body: TranslationIn, state: State, request: Request
) -> ChapterVersionOut | StreamingResponse:
    chapter = await fetch_chapter(state.retrieval, chapter_id)
    return await chapter_version(
        state, request, Job(chapter, Kind.translation, body.language.value)
    )
