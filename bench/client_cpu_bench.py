"""CPU per call of the HTTP clients the services use, alternated A/B in one process:

    uv run --frozen python bench/client_cpu_bench.py internal   # httpx vs aiohttp, a JSON call
    uv run --frozen python bench/client_cpu_bench.py genai      # google-genai: httpx2 vs aiohttp

`internal`: a search-sized JSON reply (five results of ~150 words) from a local uvicorn app,
10 calls at a time; what the internal client spends per call. `genai`: whole streamed answers
(27 chunks of 8 words) from the fake Gemini through lectern_common.gemini.Gemini, with
google-genai on its httpx2 transport (what we use) and on its aiohttp one. On uvloop, as in
the services; prints the CPU time of this process per call (the servers run in other
processes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
import orjson
import uvicorn
import uvloop
from google.genai import types
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lectern_common.gemini import Gemini, GeminiConfig
from lectern_dev.harness.polling import wait_until
from lectern_dev.stack import free_port

REPLY = json.dumps(
    {
        "results": [
            {
                "chunk_id": f"c{i}",
                "text": "word " * 150,
                "score": 0.5,
                "title": "t",
                "section": "s",
                "url": "/u",
                "source_path": "p",
                "chapter_id": "ch",
            }
            for i in range(5)
        ]
    }
).encode()
QUERY = {"query": "what is a topic in ros 2 and how do nodes use it", "top_k": 5}


async def _search(request: Request) -> Response:
    await request.body()
    return Response(REPLY, media_type="application/json")


def _serve(port: int) -> None:
    uvicorn.run(
        Starlette(routes=[Route("/s", _search, methods=["POST"])]), port=port, log_level="warning"
    )


async def cpu_per_call(
    call: Callable[[], Awaitable[object]], calls: int, concurrency: int = 10
) -> float:
    """Milliseconds of this process's CPU per call (after a warm-up of 50 calls)."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await call()

    await asyncio.gather(*(one() for _ in range(50)))
    started = time.process_time()
    await asyncio.gather(*(one() for _ in range(calls)))
    return (time.process_time() - started) / calls * 1000


async def internal(url: str, calls: int) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=url) as client:

        async def with_httpx() -> object:
            return (await client.post("/s", json=QUERY)).json()

        httpx_ms = await cpu_per_call(with_httpx, calls)
    async with aiohttp.ClientSession() as session:

        async def with_aiohttp() -> object:
            async with session.post(f"{url}/s", json=QUERY) as response:
                return orjson.loads(await response.read())

        aiohttp_ms = await cpu_per_call(with_aiohttp, calls)
    return {"httpx": round(httpx_ms, 3), "aiohttp": round(aiohttp_ms, 3)}


async def genai(url: str, answers: int) -> dict[str, float]:
    config = GeminiConfig(api_key="bench", model="gemini-2.5-flash", base_url=url)
    ours = Gemini(config)  # pinned to httpx2
    on_aiohttp = Gemini(config)
    on_aiohttp.client = on_aiohttp.client.__class__(  # google-genai's default when installed
        api_key="bench", http_options=types.HttpOptions(base_url=url)
    )
    out = {}
    for name, gemini in (("httpx2", ours), ("aiohttp", on_aiohttp)):

        async def answer(gemini: Gemini = gemini) -> object:
            return [text async for text in gemini.stream("What is a topic?")]

        out[name] = round(await cpu_per_call(answer, answers), 3)
        await gemini.aclose()
    return out


def listening(url: str) -> bool:
    """Whether something answers at `url` (any status: the routes differ per server)."""
    try:
        httpx.get(url, timeout=1.0)
    except httpx.TransportError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["internal", "genai"])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    port = free_port()
    if args.what == "internal":
        server = multiprocessing.Process(target=_serve, args=(port,), daemon=True)
        server.start()
    else:
        server = subprocess.Popen(
            [sys.executable, "-m", "lectern_dev.fake_gemini", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: listening(url), 20, interval_s=0.1, message=f"{url} never answered")
        if args.what == "genai":
            reply = (
                "A node publishes sensor data on a topic and the controller subscribes to it [1]. "
            ) * 14
            httpx.post(
                f"{url}/_fake/config",
                json={
                    "ttft_ms": 0,
                    "token_interval_ms": 0,
                    "words_per_chunk": 8,
                    "default_reply": reply.strip(),
                },
            ).raise_for_status()
        rounds = []
        for _ in range(args.rounds):
            if args.what == "internal":
                rounds.append(uvloop.run(internal(url, args.calls)))
            else:
                rounds.append(uvloop.run(genai(url, max(args.calls // 5, 50))))
    finally:
        server.terminate()
    print(json.dumps({"what": args.what, "cpu_ms_per_call": rounds}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
