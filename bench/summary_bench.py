"""Benchmark: a cached chapter summary served through the gateway (p50/p95/p99), against a stack
started here with the fake Gemini (or a running one with --url), plus the same request made
straight to the summary service to show the gateway's share.

Started here, it first sends `--cold` concurrent requests (default 100) for the chapter before
anything is cached, and counts the model calls the fake received for them (the single flight:
one).

Run: `uv run --frozen python bench/summary_bench.py [--requests 1000] [--concurrency 1]
[--cold 100]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from lectern_dev.harness.books import BOOK_DIR, chapter_id_of, ingest
from lectern_dev.harness.services import fake_gemini_client, internal_headers, model_calls
from lectern_dev.stack import Ports, Stack, StackConfig

SOURCE = "bench-summary"


def first_chapter_file() -> Path:
    return next(p for p in sorted(BOOK_DIR.rglob("*")) if p.suffix in (".md", ".mdx"))


def start_stack(data_dir: Path) -> Stack:
    # The gateway's per-client rate limit would turn a tight loop from one address into 429s.
    config = StackConfig(
        data_dir=data_dir,
        ports=Ports.random(),
        fake_gemini=True,
        extra_env={"RATE_API_PER_S": "100000", "RATE_API_BURST": "100000"},
    )
    return Stack(config).start()


def ingest_one(stack: Stack) -> str:
    path = first_chapter_file()
    name = path.relative_to(BOOK_DIR).as_posix()
    ingest(stack, SOURCE, {name: path.read_bytes()}, timeout=300)
    return chapter_id_of(SOURCE, name)


async def measure(
    base_url: str, path: str, *, requests: int, concurrency: int, headers: dict[str, str]
) -> dict:
    latencies: list[float] = []
    failures = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=10.0
    ) as client:
        for _ in range(min(50, requests)):  # warm connections and caches
            await client.get(path)

        async def worker() -> None:
            nonlocal failures
            while not queue.empty():
                queue.get_nowait()
                started = time.perf_counter()
                response = await client.get(path)
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200 or response.json()["cached"] is not True:
                    failures += 1

        wall = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - wall
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "requests": requests,
        "concurrency": concurrency,
        "failures": failures,
        "p50_ms": round(cuts[49], 2),
        "p95_ms": round(cuts[94], 2),
        "p99_ms": round(cuts[98], 2),
        "mean_ms": round(statistics.fmean(latencies), 2),
        "max_ms": round(max(latencies), 2),
        "rps": round(requests / wall, 1),
    }


async def cold_burst(stack: Stack, chapter_id: str, n: int) -> dict:
    """`n` requests at once for a summary nobody asked for yet: how many model calls they made
    (the fake's request log), how long the last waited, and whether all got the same text."""
    path = f"/api/summary/chapters/{chapter_id}"
    with fake_gemini_client(stack) as fake:
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        async with httpx.AsyncClient(
            base_url=stack.gateway_url, limits=limits, timeout=120.0
        ) as client:

            async def one() -> tuple[float, httpx.Response]:
                started = time.perf_counter()
                response = await client.get(path)
                return (time.perf_counter() - started) * 1000, response

            answers = await asyncio.gather(*(one() for _ in range(n)))
        calls = len(model_calls(fake))
    latencies = sorted(ms for ms, _ in answers)
    texts = {r.json()["summary"] for _, r in answers if r.status_code == 200}
    return {
        "requests": n,
        "model_calls": calls,
        "failures": sum(r.status_code != 200 for _, r in answers),
        "distinct_texts": len(texts),
        "p50_ms": round(latencies[len(latencies) // 2], 1),
        "max_ms": round(latencies[-1], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--url", help="gateway of a running stack (default: start one here)")
    parser.add_argument("--chapter-id", help="with --url: the chapter to summarise")
    parser.add_argument("--cold", type=int, default=100, help="concurrent requests, nothing cached")
    args = parser.parse_args()
    if args.url:
        if not args.chapter_id:
            parser.error("--url needs --chapter-id")
        return report(args, args.url, args.chapter_id, direct=None)
    with tempfile.TemporaryDirectory(prefix="summary-bench-") as tmp:
        stack = start_stack(Path(tmp))
        try:
            chapter_id = ingest_one(stack)
            cold = asyncio.run(cold_burst(stack, chapter_id, args.cold)) if args.cold else None
            direct = (stack.config.url("summary"), internal_headers(stack))
            return report(args, stack.gateway_url, chapter_id, direct=direct, cold=cold)
        finally:
            stack.stop()


def report(
    args: argparse.Namespace,
    gateway: str,
    chapter_id: str,
    direct: tuple[str, dict[str, str]] | None,
    cold: dict | None = None,
) -> int:
    path = f"/api/summary/chapters/{chapter_id}"
    first = httpx.get(f"{gateway}{path}", timeout=60.0)
    first.raise_for_status()  # generates (one model call) and stores the summary
    results = {
        "chapter_id": chapter_id,
        "cold": cold,
        "gateway": asyncio.run(
            measure(gateway, path, requests=args.requests, concurrency=args.concurrency, headers={})
        ),
    }
    if direct is not None:
        results["direct"] = asyncio.run(
            measure(
                direct[0],
                path,
                requests=args.requests,
                concurrency=args.concurrency,
                headers=direct[1],
            )
        )
    print(json.dumps(results, indent=2))
    ok = results["gateway"]["failures"] == 0
    print(
        f"p95 through the gateway: {results['gateway']['p95_ms']} ms (target < 20 ms)",
        file=sys.stderr,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
