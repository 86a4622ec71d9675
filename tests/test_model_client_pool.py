"""The model client keeps a whole classroom's streams open at once: every answer holds its
model connection until it ends, so a pool smaller than the burst makes the last readers wait
for others' answers to finish. The real google-genai client (through lectern_common.gemini)
against a server that holds each stream until all of them are open."""

from __future__ import annotations

import asyncio
import json
import socket

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from lectern_common.gemini import Gemini, GeminiConfig

STREAMS = 150  # more than httpx's default pool of 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_burst_of_streams_is_open_at_once() -> None:
    open_now = most_open = 0
    all_open = asyncio.Event()

    async def stream(request: Request) -> StreamingResponse:
        nonlocal open_now, most_open
        await request.body()
        open_now += 1
        most_open = max(most_open, open_now)
        if open_now >= STREAMS:
            all_open.set()

        async def body():
            try:
                try:  # hold the stream until every one is open (or give up after a while)
                    await asyncio.wait_for(all_open.wait(), timeout=4.0)
                except TimeoutError:
                    pass
                chunk = {
                    "candidates": [
                        {
                            "content": {"role": "model", "parts": [{"text": "ok"}]},
                            "finishReason": "STOP",
                            "index": 0,
                        }
                    ]
                }
                yield f"data: {json.dumps(chunk)}\r\n\r\n".encode()
            finally:
                nonlocal open_now
                open_now -= 1

        return StreamingResponse(body(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/{path:path}", stream, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", backlog=1024, log_config=None
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    gemini = Gemini(
        GeminiConfig(api_key="test-key", model="gemini-test", base_url=f"http://127.0.0.1:{port}")
    )

    async def answer() -> str:
        return "".join([piece async for piece in gemini.stream("a question")])

    try:
        answers = await asyncio.gather(*(answer() for _ in range(STREAMS)))
    finally:
        await gemini.aclose()
        server.should_exit = True
        await serving
    assert answers == ["ok"] * STREAMS
    assert most_open == STREAMS, f"only {most_open} of {STREAMS} streams were open at once"
