"""Concurrent answer streams through the gateway against the fake Gemini: how much the chat
service (gateway, guest token, storage, retrieval, prompt, model client, Redis event log)
adds before the first token, at 50 and 200 streams at once.

    uv run --frozen python bench/chat_bench.py                       # 50 and 200 streams
    uv run --frozen python bench/chat_bench.py --streams 50 --ttft-ms 300 --rounds 2

It starts its own stack (random ports, a temporary folder, the fake Gemini, the gateway's
stream rate limit raised since every stream comes from one address), ingests the sample book,
tells the fake to wait `--ttft-ms` before its first chunk, warms up (questions one by one, then
one unmeasured burst of the first level: a service that has seen traffic has its connection
pools filled; `--cold` skips the burst), then for each level opens N streams at once (new
guests, one question each) and reports per level: p50/p95 of the time to `sources`, of
(time to first token - the fake's delay), of the whole answer, and errors (non-200, `error`
events, broken streams). Target: at 50 streams the overhead before the first
token stays under 100 ms p95 with no errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx

from lectern_dev.harness.books import ingest_book
from lectern_dev.harness.cpu import CpuProbe
from lectern_dev.harness.services import routed
from lectern_dev.harness.sse import frame_fields
from lectern_dev.stack import Ports, Stack, StackConfig

QUESTIONS = [
    "What does an IMU measure on a walking humanoid?",
    "How do I bridge Gazebo topics to ROS 2?",
    "What is the difference between a topic and a service?",
    "How is a lidar scan published?",
    "Why should a simulation use simulated time?",
    "How do I tune a PID controller?",
    "What is a ROS 2 workspace?",
    "How are links and joints described in URDF?",
]


@dataclass
class Stream:
    sources_ms: float | None = None
    first_token_ms: float | None = None
    total_ms: float | None = None
    server: dict | None = None  # the chat service's own timings_ms from `done`
    error: str | None = None


async def one_stream(session: aiohttp.ClientSession, question: str) -> Stream:
    """One answer, read as whole SSE frames: the load generator shares the machine's two cores
    with the stack, so it spends as little CPU per event as it can (aiohttp, no line reader)."""
    result = Stream()
    started = time.perf_counter()

    def since() -> float:
        return (time.perf_counter() - started) * 1000

    try:
        async with session.post("/api/chat/stream", json={"message": question}) as response:
            if response.status != 200:
                await response.read()
                result.error = f"http {response.status}"
                return result
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                *frames, buffer = buffer.split(b"\n\n")
                for frame in frames:
                    fields = frame_fields(frame.decode().split("\n"))
                    name = fields.get("event")
                    if name == "sources" and result.sources_ms is None:
                        result.sources_ms = since()
                    elif name == "token" and result.first_token_ms is None:
                        result.first_token_ms = since()
                    elif name == "error":
                        result.error = "error event"
                    elif name == "done":
                        result.total_ms = since()
                        result.server = json.loads(fields["data"])["timings_ms"]
            if result.total_ms is None and result.error is None:
                result.error = "stream ended without done"
    except (aiohttp.ClientError, TimeoutError) as exc:
        result.error = type(exc).__name__
    return result


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"p50": None, "p95": None}
    if len(values) == 1:
        return {"p50": round(values[0], 1), "p95": round(values[0], 1)}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(q[49], 1), "p95": round(q[94], 1)}


def summarize(results: list[Stream], ttft_ms: float, **label: object) -> dict:
    errors: dict[str, int] = {}
    for r in results:
        if r.error:
            errors[r.error] = errors.get(r.error, 0) + 1
    ok = [r for r in results if r.error is None]
    served = [r.server for r in ok if r.server]
    return {
        **label,
        "answers": len(results),
        "ok": len(ok),
        "errors": errors,
        "client": {
            "sources_ms": percentiles([r.sources_ms for r in ok if r.sources_ms]),
            "overhead_before_first_token_ms": percentiles(
                [r.first_token_ms - ttft_ms for r in ok if r.first_token_ms]
            ),
            "total_ms": percentiles([r.total_ms for r in ok if r.total_ms]),
        },
        # Measured inside the chat service, from the request's arrival: how much of the
        # overhead is retrieval, and how much the rest of the service.
        "server": {
            "retrieval_ms": percentiles([t["retrieval"] for t in served]),
            "overhead_before_first_token_ms": percentiles(
                [t["first_token"] - ttft_ms for t in served]
            ),
            "overhead_without_retrieval_ms": percentiles(
                [t["first_token"] - ttft_ms - t["retrieval"] for t in served]
            ),
        },
    }


def client_for(url: str, streams: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        base_url=url,
        timeout=aiohttp.ClientTimeout(total=60),
        connector=aiohttp.TCPConnector(limit=streams + 10),
    )


async def level(url: str, streams: int, ttft_ms: float) -> dict:
    """A burst: N streams opened at the same instant."""
    async with client_for(url, streams) as client:
        results = await asyncio.gather(
            *(one_stream(client, QUESTIONS[i % len(QUESTIONS)]) for i in range(streams))
        )
    return summarize(list(results), ttft_ms, mode="burst", streams=streams)


async def sustained(
    url: str,
    readers: int,
    ttft_ms: float,
    *,
    duration_s: float,
    think_s: float = 0.0,
    warmup_s: float = 3.0,
) -> dict:
    """N readers each ask again `think_s` after their last answer is done (0: at once, so N
    streams are open at all times); answers started in the warm-up are not counted."""
    results: list[Stream] = []
    answered = 0
    started = time.perf_counter()
    stop_at = started + warmup_s + duration_s

    async def reader(client: aiohttp.ClientSession, i: int) -> None:
        await asyncio.sleep(random.random())  # readers do not all click in the same instant
        k = 0
        while time.perf_counter() < stop_at:
            asked = time.perf_counter()
            result = await one_stream(client, QUESTIONS[(i + k) % len(QUESTIONS)])
            k += 1
            nonlocal answered
            answered += 1
            if asked - started >= warmup_s:
                results.append(result)
            if think_s:  # reading the answer, a little longer or shorter each time
                await asyncio.sleep(think_s * (0.5 + random.random()))

    async with client_for(url, readers) as client:
        await asyncio.gather(*(reader(client, i) for i in range(readers)))
    return {
        **summarize(results, ttft_ms, mode="sustained", streams=readers, duration_s=duration_s),
        "answers_with_warmup": answered,
    }


async def measure(
    url: str,
    levels: list[int],
    rounds: int,
    ttft_ms: float,
    *,
    mode: str,
    duration_s: float,
    think_s: float,
    cpu: CpuProbe,
    cold: bool,
) -> list[dict]:
    async with client_for(url, 1) as client:
        for question in QUESTIONS:  # warm connections, pools, model client and caches
            await one_stream(client, question)
    if not cold and mode == "burst":
        await level(url, levels[0], ttft_ms)
    out = []
    for streams in levels:
        for _ in range(rounds):
            before = cpu.snapshot()
            if mode == "sustained":
                result = await sustained(
                    url, streams, ttft_ms, duration_s=duration_s, think_s=think_s
                )
            else:
                result = await level(url, streams, ttft_ms)
            await asyncio.sleep(1.0)  # let the answers settle (and their storage finish)
            answers = result.get("answers_with_warmup", result["answers"])
            result["cpu_ms_per_answer"] = CpuProbe.per_unit(before, cpu.snapshot(), answers)
            out.append(result)
    return out


def long_reply(words: int) -> str:
    """An answer of about `words` words that cites its first source, like a real one."""
    sentence = "A node publishes sensor data on a topic and the controller subscribes to it [1]. "
    per = len(sentence.split())
    return (sentence * max(1, words // per)).strip()


def start_stack(args: argparse.Namespace) -> Stack:
    folder = Path(tempfile.mkdtemp(prefix="lectern-chat-bench-"))
    env = {
        "RATE_STREAM_PER_MIN": "1000000",
        "RATE_STREAM_BURST": "100000",
        "RATE_API_PER_S": "100000",
        "RATE_API_BURST": "100000",
        "CHAT_MAX_OPEN_STREAMS": "1000",
        "CHAT_MAX_OPEN_STREAMS_PER_ADDRESS": "100000",
        "DATABASE_POOL_MAX": str(args.db_pool),
        "CHAT_WEB_CONCURRENCY": str(args.chat_workers),
    }
    config = StackConfig(
        data_dir=folder,
        ports=Ports.random(),
        fake_gemini=True,
        redis_prefix="lectern-chat-bench:",
        extra_env=env,
        services=("retrieval", "profile", "chat"),
        with_auth=False,
    )
    return Stack(config).start()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--ttft-ms", type=float, default=300.0)
    parser.add_argument("--token-interval-ms", type=float, default=20.0)
    # Gemini sends a few dozen tokens per chunk; the fake's default (3 words) would make the
    # client spend far more time parsing chunks than it does in production.
    parser.add_argument("--words-per-chunk", type=int, default=8)
    parser.add_argument("--db-pool", type=int, default=20)
    parser.add_argument(
        "--mode",
        choices=["burst", "sustained"],
        default="burst",
        help="burst: N streams opened at once; sustained: N readers each keep "
        "a stream open for --duration seconds",
    )
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument(
        "--think-s",
        type=float,
        default=0.0,
        help="sustained: mean pause of a reader between answers (0: none)",
    )
    parser.add_argument(
        "--reply-words",
        type=int,
        default=0,
        help="length of the fake's answers (0: its short default)",
    )
    parser.add_argument("--chat-workers", type=int, default=1)
    parser.add_argument(
        "--cold",
        action="store_true",
        help="burst: no unmeasured burst first (pools start nearly empty)",
    )
    args = parser.parse_args()

    stack = start_stack(args)
    try:
        routed(stack)
        ingest_book(stack)
        fake = stack.config.url("fake_gemini")
        behaviour = {
            "ttft_ms": args.ttft_ms,
            "token_interval_ms": args.token_interval_ms,
            "words_per_chunk": args.words_per_chunk,
        }
        if args.reply_words:
            behaviour["default_reply"] = long_reply(args.reply_words)
        httpx.post(f"{fake}/_fake/config", json=behaviour).raise_for_status()
        probe = CpuProbe({name: process.popen.pid for name, process in stack.processes.items()})
        results = asyncio.run(
            measure(
                stack.gateway_url,
                args.streams,
                args.rounds,
                args.ttft_ms,
                mode=args.mode,
                duration_s=args.duration,
                think_s=args.think_s,
                cpu=probe,
                cold=args.cold,
            )
        )
    finally:
        stack.stop()
    report = {
        "machine": {"cpus": os.cpu_count(), "load_1m": round(os.getloadavg()[0], 1)},
        "fake": {
            "ttft_ms": args.ttft_ms,
            "token_interval_ms": args.token_interval_ms,
            "words_per_chunk": args.words_per_chunk,
            "reply_words": args.reply_words or "default",
        },
        "chat_workers": args.chat_workers,
        "cold": args.cold,
        "levels": results,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
