"""Benchmark: a cached chapter summary served through the gateway (p50/p95/p99), against a stack
started here with the fake Gemini (or a running one with --url), plus the same request made
straight to the summary service to show the gateway's share.

Run: `uv run --frozen python bench/summary_bench.py [--requests 1000] [--concurrency 1]`.
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
from lectern_dev.harness.services import internal_headers
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--url", help="gateway of a running stack (default: start one here)")
    parser.add_argument("--chapter-id", help="with --url: the chapter to summarise")
    args = parser.parse_args()
    if args.url:
        if not args.chapter_id:
            parser.error("--url needs --chapter-id")
        return report(args, args.url, args.chapter_id, direct=None)
    with tempfile.TemporaryDirectory(prefix="summary-bench-") as tmp:
        stack = start_stack(Path(tmp))
        try:
            chapter_id = ingest_one(stack)
            direct = (stack.config.url("summary"), internal_headers(stack))
            return report(args, stack.gateway_url, chapter_id, direct=direct)
        finally:
            stack.stop()


def report(
    args: argparse.Namespace,
    gateway: str,
    chapter_id: str,
    direct: tuple[str, dict[str, str]] | None,
) -> int:
    path = f"/api/summary/chapters/{chapter_id}"
    first = httpx.get(f"{gateway}{path}", timeout=60.0)
    first.raise_for_status()  # generates (one model call) and stores the summary
    results = {
        "chapter_id": chapter_id,
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
