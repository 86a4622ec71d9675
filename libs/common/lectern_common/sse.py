"""Server-sent events, framed once for every stream (the chat's answers, the summary's
chapters): `id:`, `event:` and a JSON `data:` line per event, comments as keep-alives.

Frames are bytes made here and sent through Starlette's StreamingResponse: no per-event
objects, timeouts or tasks (sse-starlette's per-event send timeout and ping task cost ~11% of
the chat's CPU at 50 streams).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from fastapi.responses import StreamingResponse

# No caching, and no buffering by proxies that honour it (nginx): each event at once.
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
# A comment line: keeps proxies and the reader's idle timer from giving up during a pause.
KEEPALIVE = b": keep-alive\n\n"


def event_frame(event_id: int, name: str, data: dict) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event_id, name.encode(), orjson.dumps(data))


def sse_response(frames: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(frames, media_type="text/event-stream", headers=SSE_HEADERS)
