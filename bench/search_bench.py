"""Search latency through the gateway at both-corpora size, and first vs unchanged re-ingest.

    uv run --frozen python bench/search_bench.py                 # own stack, local embedder
    uv run --frozen python bench/search_bench.py --url http://127.0.0.1:8080 --skip-ingest

Without --url it starts a retrieval stack (retrieval, profile, auth, gateway) in a temporary
folder, ingests ../shared/corpus/gazebo and ../shared/corpus/ros2 (timed), ingests them again
unchanged (timed), then sends every gold question (and reworded variants) through the
gateway's POST /api/search, sequentially on one keep-alive connection, and prints p50/p95.
With `--bursts 50 200` it also sends that many different questions at once (a classroom
asking together), `--rounds` times each, and prints each burst's p50/p95 over all rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from lectern_dev import REPO_ROOT
from lectern_dev.evaluate import load_gold
from lectern_dev.ingest import bearer, post_files, source_files
from lectern_dev.stack import Ports, Stack, StackConfig

SHARED = REPO_ROOT.parent / "shared"


def ingest(url: str, token: str, source: str) -> dict:
    response = post_files(
        url,
        source=source,
        files=source_files(SHARED / "corpus" / source),
        headers=bearer(token),
        timeout_s=7200.0,
    )
    response.raise_for_status()
    return response.json()


def queries() -> list[str]:
    questions = [g["question"] for g in load_gold(SHARED / "eval" / "dev.jsonl")]
    variants = [q.lower().rstrip("?") + " in ROS 2" for q in questions]
    short = [" ".join(q.split()[:4]) for q in questions]
    return questions + variants + short


def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def measure(url: str, rounds: int, top_k: int) -> dict:
    qs = queries()
    latencies: list[float] = []
    with httpx.Client(base_url=url, timeout=30.0) as client:
        for q in qs[:10]:  # warm the connection, the model and the caches
            client.post("/api/search", json={"query": q, "top_k": top_k}).raise_for_status()
        for _ in range(rounds):
            for q in qs:
                started = time.perf_counter()
                response = client.post("/api/search", json={"query": q, "top_k": top_k})
                latencies.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
    return {
        "queries": len(latencies),
        "top_k": top_k,
        "p50_ms": round(percentile(latencies, 50), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1),
    }


async def burst_latencies(url: str, size: int, top_k: int) -> list[float]:
    """`size` searches sent together, each on its own connection; their latencies in ms."""
    qs = queries()
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    async with httpx.AsyncClient(base_url=url, timeout=60.0, limits=limits) as client:
        # Open the connections first, so the burst measures searches, not TCP handshakes.
        await asyncio.gather(*(client.get("/api/chapters") for _ in range(size)))

        async def one(query: str) -> float:
            started = time.perf_counter()
            response = await client.post("/api/search", json={"query": query, "top_k": top_k})
            response.raise_for_status()
            return (time.perf_counter() - started) * 1000

        return list(await asyncio.gather(*(one(qs[i % len(qs)]) for i in range(size))))


def measure_bursts(url: str, sizes: list[int], rounds: int, top_k: int) -> dict:
    out = {}
    for size in sizes:
        latencies = [
            ms for _ in range(rounds) for ms in asyncio.run(burst_latencies(url, size, top_k))
        ]
        out[str(size)] = {
            "searches": len(latencies),
            "p50_ms": round(percentile(latencies, 50), 1),
            "p95_ms": round(percentile(latencies, 95), 1),
            "max_ms": round(max(latencies), 1),
        }
    return out


def chapter_count(url: str) -> int:
    return len(httpx.get(f"{url}/api/chapters", timeout=30).json()["chapters"])


def run(args: argparse.Namespace) -> dict:
    result: dict = {"machine": {"cpus": os.cpu_count(), "load_1m": os.getloadavg()[0]}}
    if args.url:
        url, token, stack = args.url.rstrip("/"), os.environ.get("ADMIN_TOKEN", ""), None
    else:
        folder = Path(tempfile.mkdtemp(prefix="lectern-bench-"))
        stack = Stack(
            StackConfig(
                data_dir=folder,
                ports=Ports.random(),
                services=("retrieval", "profile"),
                extra_env={"EMBEDDINGS_PROVIDER": "local"},
            )
        ).start()
        url, token = stack.gateway_url, stack.secrets["ADMIN_TOKEN"]
    try:
        if not args.skip_ingest:
            first = {s: ingest(url, token, s) for s in ("gazebo", "ros2")}
            again = {s: ingest(url, token, s) for s in ("gazebo", "ros2")}
            first_s = sum(v["seconds"] for v in first.values())
            again_s = sum(v["seconds"] for v in again.values())
            result["ingest"] = {
                "chunks": sum(v["chunks"] for v in first.values()),
                "first_s": round(first_s, 2),
                "first_embeddings": sum(v["embeddings_computed"] for v in first.values()),
                "unchanged_s": round(again_s, 3),
                "unchanged_embeddings": sum(v["embeddings_computed"] for v in again.values()),
                "speedup": round(first_s / max(again_s, 1e-6), 1),
            }
        result["chapters"] = chapter_count(url)
        result["search"] = measure(url, args.rounds, args.top_k)
        if args.bursts:
            result["bursts"] = measure_bursts(url, args.bursts, args.rounds, args.top_k)
        result["machine"]["load_1m_after"] = os.getloadavg()[0]
        return result
    finally:
        if stack is not None:
            stack.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an already running gateway (ADMIN_TOKEN from env)")
    parser.add_argument("--skip-ingest", action="store_true", help="only measure search")
    parser.add_argument("--rounds", type=int, default=5, help="passes over the query set")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument(
        "--bursts", type=int, nargs="*", default=[], help="concurrent burst sizes, e.g. 50 200"
    )
    print(json.dumps(run(parser.parse_args()), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
