"""HTTP routes of the retrieval service: search, chapters, the admin ingest and search."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.datastructures import UploadFile

from lectern_common.contracts import (
    CHAPTER_ID,
    Chapter,
    ChaptersResponse,
    SearchRequest,
    SearchResponse,
)
from lectern_common.errors import ApiError, NotFound
from lectern_retrieval import store
from lectern_retrieval.deps import Admin, RetrievalState, State
from lectern_retrieval.ingest import SourceFile, check_source, check_url_prefix, collect_folder
from lectern_retrieval.ingest_stream import NDJSON, progress_lines
from lectern_retrieval.schemas import IngestPathRequest, IngestSummary, PublicSearchRequest

router = APIRouter(tags=["retrieval"])


@router.post("/api/search", response_model=SearchResponse)
async def public_search(body: PublicSearchRequest, state: State) -> dict:
    return await state.searcher.search(body.query, top_k=body.top_k, chapter_id=body.chapter_id)


@router.post("/internal/search", response_model=SearchResponse)
async def internal_search(body: SearchRequest, state: State) -> dict:
    return await state.searcher.search(
        body.query, top_k=body.top_k, chapter_id=body.chapter_id, mode=body.mode
    )


@router.post("/api/admin/search", response_model=SearchResponse, dependencies=[Admin])
async def admin_search(body: SearchRequest, state: State) -> dict:
    """The internal search for the book's operators: one leg alone (`mode`), for `lectern eval`
    to score the BM25, dense and hybrid baselines on the same index."""
    return await internal_search(body, state)


@router.get("/api/chapters", response_model=ChaptersResponse)
async def chapters(state: State) -> dict:
    return {"chapters": await store.list_chapters(state.pool)}


@router.get("/internal/chapters/{chapter_id}", response_model=Chapter)
async def chapter(chapter_id: str, state: State) -> dict:
    found = (
        await store.get_chapter(state.pool, chapter_id) if CHAPTER_ID.match(chapter_id) else None
    )
    if found is None:
        raise NotFound("chapter")
    return found


def _default_prefix(source: str) -> str:
    return f"/docs/{source}/"


async def _read_upload(
    request: Request, state: RetrievalState
) -> tuple[str, str, list[SourceFile]]:
    settings = state.settings
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > settings.max_upload_bytes:
        raise ApiError(
            413, "payload_too_large", f"upload is larger than {settings.max_upload_bytes} bytes"
        )
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(415, "unsupported_media_type", "send multipart/form-data")
    form = await request.form(max_files=settings.max_upload_files, max_fields=10)
    source = form.get("source")
    if not isinstance(source, str):
        raise ApiError(
            422,
            "validation_error",
            "field 'source' is required",
            details=[{"field": "source", "message": "required"}],
        )
    prefix = form.get("url_prefix")
    prefix = prefix if isinstance(prefix, str) and prefix else _default_prefix(source)
    uploads = form.getlist("files")
    if not uploads:
        raise ApiError(
            422,
            "validation_error",
            "at least one file is required",
            details=[{"field": "files", "message": "required"}],
        )
    files = []
    total = 0
    for n, upload in enumerate(uploads):
        if not isinstance(upload, UploadFile):
            raise ApiError(
                422,
                "validation_error",
                f"files[{n}] is not a file",
                details=[{"field": f"files[{n}]", "message": "not a file"}],
            )
        data = await upload.read(settings.max_file_bytes + 1)
        total += len(data)
        if len(data) > settings.max_file_bytes or total > settings.max_upload_bytes:
            raise ApiError(
                413,
                "payload_too_large",
                f"files[{n}] ({upload.filename}) is too large "
                f"(at most {settings.max_file_bytes} bytes per file)",
            )
        files.append(SourceFile(path=upload.filename or "", data=data))
    return check_source(source), check_url_prefix(prefix), files


async def _run_ingest(
    request: Request, state: RetrievalState, source: str, prefix: str, files: list[SourceFile]
) -> dict | StreamingResponse:
    started = time.perf_counter()
    docs = await state.ingestor.prepare(source, files, url_prefix=prefix)
    if NDJSON not in request.headers.get("accept", ""):
        return await state.ingestor.apply(source, docs, started=started)
    lines = progress_lines(
        state.ingestor, state.background, source=source, docs=docs, started=started
    )
    return StreamingResponse(lines, media_type=NDJSON)


# The upload is read by hand (`_read_upload`, with its own caps), so FastAPI cannot describe
# it: this is its form, for clients and for the fuzzer (tests/security/test_fuzz_routes.py).
UPLOAD_FORM = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["source", "files"],
                "properties": {
                    "source": {"type": "string", "maxLength": 40},
                    "url_prefix": {"type": "string", "maxLength": 200},
                    "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                },
            }
        }
    },
}


@router.post(
    "/api/admin/ingest",
    response_model=IngestSummary,
    dependencies=[Admin],
    responses={200: {"content": {NDJSON: {}}}},
    openapi_extra={"requestBody": UPLOAD_FORM},
)
async def admin_ingest(request: Request, state: State) -> dict | StreamingResponse:
    """Upload a whole source (multipart: `source`, `files` named by relative path, optional
    `url_prefix`); files of that source missing from the upload are removed."""
    source, prefix, files = await _read_upload(request, state)
    return await _run_ingest(request, state, source, prefix, files)


@router.post(
    "/api/admin/ingest-path",
    response_model=IngestSummary,
    dependencies=[Admin],
    responses={200: {"content": {NDJSON: {}}}},
)
async def admin_ingest_path(
    body: IngestPathRequest, request: Request, state: State
) -> dict | StreamingResponse:
    """Ingest a folder the service can read, only below RETRIEVAL_INGEST_ROOTS."""
    source = check_source(body.source)
    prefix = check_url_prefix(body.url_prefix or _default_prefix(source))
    files = await asyncio.to_thread(collect_folder, Path(body.path), state.settings)
    return await _run_ingest(request, state, source, prefix, files)
