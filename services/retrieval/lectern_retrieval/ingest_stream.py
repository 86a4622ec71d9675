"""The streamed form of an ingest: progress events as NDJSON (one JSON object a line), ending
with the summary or an error; what `lectern ingest` shows as its progress bar."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import structlog

from lectern_common.errors import ApiError
from lectern_common.tasks import BackgroundTasks
from lectern_retrieval.ingest import Ingestor
from lectern_retrieval.store import DocumentRow

log = structlog.get_logger()
NDJSON = "application/x-ndjson"


def _error_event(exc: Exception) -> dict:
    if isinstance(exc, ApiError):
        return {"event": "error", "code": exc.code, "message": exc.message}
    return {"event": "error", "code": "internal_error", "message": "ingest failed"}


async def progress_lines(
    ingestor: Ingestor,
    tasks: BackgroundTasks,
    *,
    source: str,
    docs: list[DocumentRow],
    started: float,
) -> AsyncIterator[bytes]:
    """Apply the prepared documents and yield the progress lines. The ingest runs as a task of
    `tasks`, so it completes even if the client goes away."""
    queue: asyncio.Queue[dict] = asyncio.Queue()

    async def run() -> None:
        try:
            summary = await ingestor.apply(source, docs, started=started, progress=queue.put)
            await queue.put({"event": "summary", **summary})
        except Exception as exc:
            log.exception("ingest.failed", source=source)
            await queue.put(_error_event(exc))

    tasks.spawn(run(), name=f"ingest:{source}")
    while True:
        event = await queue.get()
        yield orjson.dumps(event) + b"\n"
        if event["event"] in ("summary", "error"):
            return
