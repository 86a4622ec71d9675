"""A 10-minute soak (issue 16): the whole stack under readers asking in a loop, sampled for leaks.

    make soak                                               # 200 readers, 600 s, into docs/soak/
    uv run --frozen python bench/soak.py --readers 20 --duration 180 --out /tmp/soak

It starts Lectern's whole stack (gateway, chat, retrieval, profile, summary, Better Auth, their
PostgreSQL and Redis) with burst_bench's `start_lectern` and a fake Gemini (300 ms to the first
token, a short cited answer), ingests book/, then runs R readers (guests), each asking a question
about the book, reading the answer and pausing 5-15 s, for D seconds. Every 10 s it samples, per
process group: RSS (VmRSS, summed over its processes: workers, PostgreSQL's backends), open fds,
CPU, and the PostgreSQL connections each service holds (pg_stat_activity by application_name);
and per window: questions asked, answered, errors by kind, first-token p50/p95. It writes
soak.json, soak.csv, soak-windows.csv and soak.svg (a hand-drawn chart: no plotting dependency)
to --out and prints the verdict: growth of each figure from the 2-minute mark to the last
sample, a pass if every one is <= 5% and no question failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
from burst_bench import start_lectern, wait_http

from lectern_dev import REPO_ROOT
from lectern_dev.fake_gemini import Behaviour, FakeState, create_app
from lectern_dev.harness.cpu import TICK_MS, CpuProbe, _processes
from lectern_dev.harness.services import routed
from lectern_dev.harness.sse import frame_fields
from lectern_dev.ingest import post_book
from lectern_dev.stack import Stack, free_port

QUESTIONS = (
    "What is a ROS 2 node?",
    "How do publishers and subscribers talk over a topic?",
    "How do I launch a robot in Gazebo?",
    "How are links and joints described in URDF?",
    "What does an IMU measure on a walking humanoid?",
    "How does a robot perceive obstacles with a camera?",
    "How do I tune a PID controller?",
    "How does a humanoid keep its balance while walking?",
    "Why does a policy trained in simulation fail on the real robot?",
    "What should an emergency stop do?",
)
NEW_CONVERSATION_EVERY = 5  # a reader's follow-ups, then a new topic
FAKE_LOG = 200  # requests the fake keeps for /_fake/requests (the stack's fake keeps all)
GROWTH_LIMIT_PCT = 5.0
MARK_S = 120.0


class RecentRequests(FakeState):
    """The fake's state with a bounded request log: over a soak the stack's fake would keep the
    body of every model call and grow by itself, hiding whatever Lectern does."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = deque(maxlen=FAKE_LOG)  # type: ignore[assignment]

    def reset(self) -> None:
        super().reset()
        self.requests = deque(maxlen=FAKE_LOG)  # type: ignore[assignment]


def serve_fake(port: int, ttft_ms: float) -> None:
    import uvicorn

    state = RecentRequests()
    state.behaviour = Behaviour(ttft_ms=ttft_ms, token_interval_ms=20.0)
    uvicorn.run(create_app(state), host="127.0.0.1", port=port, log_level="warning")


def start_stack(data_dir: Path, fake_url: str) -> Stack:
    """burst_bench's stack (its raised per-address limits: every reader comes from 127.0.0.1)
    plus what it leaves out, so every process of the product is sampled."""
    stack = start_lectern(data_dir, fake_url, workers=1)
    try:
        stack.start_process("summary")
        stack.start_process("auth")
        stack.config.services = (*stack.config.services, "summary")
        stack.wait_ready()
        routed(stack)
    except BaseException:
        stack.stop()
        raise
    return stack


def ingest_book(stack: Stack) -> dict:
    response = post_book(stack)
    response.raise_for_status()
    return response.json()


# ---- the readers -----------------------------------------------------------------------------


async def ask(
    session: aiohttp.ClientSession, url: str, body: dict, headers: dict, out: dict
) -> None:
    """One question through the gateway, read to its last event, into `out` (already counted as
    open): when it ended, its first token (ms), what it returned (meta), its error kind."""
    started = out["start"]
    try:
        async with session.post(f"{url}/api/chat/stream", json=body, headers=headers) as r:
            if r.status != 200:
                text = await r.text()
                try:
                    code = json.loads(text)["error"]["code"]
                except (ValueError, KeyError, TypeError):
                    code = text[:40]
                out["error"] = f"http {r.status} {code}"
                return
            buffer, done = "", False
            async for chunk in r.content.iter_any():
                buffer += chunk.decode()
                *blocks, buffer = buffer.replace("\r\n", "\n").split("\n\n")
                for block in blocks:
                    fields = frame_fields(block.split("\n"))
                    name = fields.get("event")
                    if name == "meta":
                        out["meta"] = json.loads(fields["data"])
                    elif name == "token" and out["first_ms"] is None:
                        out["first_ms"] = (time.monotonic() - started) * 1000
                    elif name == "error":
                        data = json.loads(fields.get("data") or "{}")
                        out["error"] = f"error event {data.get('code')}"
                    elif name == "done":
                        done = True
            if not done and not out["error"]:
                out["error"] = "no done event"
    except (aiohttp.ClientError, TimeoutError) as exc:
        out["error"] = type(exc).__name__
    finally:
        out["end"] = time.monotonic()


def browser(pause: tuple[float, float]) -> aiohttp.ClientSession:
    """One reader's browser: one connection to the site, kept open between questions (as a
    browser keeps its idle connection for minutes), so the gateway's client connections are
    the readers', not a load generator's pool that grows and shrinks with the open questions."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1, keepalive_timeout=pause[1] + 30),
        timeout=aiohttp.ClientTimeout(total=120),
    )


async def reader(
    url: str,
    stop_at: float,
    pause: tuple[float, float],
    results: list[dict],
) -> None:
    """A guest reading the book: asks, reads the answer, pauses, asks a follow-up in the same
    conversation (a new one every few questions), until the soak ends."""
    await asyncio.sleep(random.uniform(0, pause[1]))  # readers arrive over the first pause
    async with browser(pause) as session:
        await read(session, url, stop_at, pause, results)


async def read(
    session: aiohttp.ClientSession,
    url: str,
    stop_at: float,
    pause: tuple[float, float],
    results: list[dict],
) -> None:
    headers: dict[str, str] = {}
    conversation: str | None = None
    asked = 0
    while time.monotonic() < stop_at:
        body: dict = {"message": random.choice(QUESTIONS)}
        if conversation and asked % NEW_CONVERSATION_EVERY:
            body["conversation_id"] = conversation
        result: dict = {"start": time.monotonic(), "end": None, "first_ms": None}
        result.update(error=None, meta=None)
        results.append(result)
        await ask(session, url, body, headers, result)
        asked += 1
        if meta := result.pop("meta"):
            conversation = meta.get("conversation_id")
            if token := meta.get("guest_token"):
                headers = {"x-guest-token": token}
        await asyncio.sleep(random.uniform(*pause))


# ---- the samples -----------------------------------------------------------------------------


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0  # a kernel thread or a zombie


def pss_kb(pid: int) -> tuple[int, int]:
    """The process's proportional set size (its private pages plus its share of the shared
    ones: PostgreSQL's shared buffers counted once over all backends, not once per backend),
    and the part of it that is shared memory (Pss_Shmem: for PostgreSQL, shared buffers)."""
    pss = shmem = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            pss = int(line.split()[1])
        elif line.startswith("Pss_Shmem:"):
            shmem = int(line.split()[1])
    return pss, shmem


def group_members(groups: dict[str, int], postmaster: int) -> dict[str, list[int]]:
    """The pids of each named process group, and PostgreSQL's (the postmaster and its
    children: the backends and its own workers)."""
    by_group = {pgid: name for name, pgid in groups.items()}
    members: dict[str, list[int]] = {name: [] for name in [*groups, "postgres"]}
    for pid, ppid, pgrp, comm, _ in _processes():
        if comm == "postgres" and postmaster in (pid, ppid):
            members["postgres"].append(pid)
        elif pgrp in by_group:
            members[by_group[pgrp]].append(pid)
    return members


def tcp_sockets() -> dict[int, tuple[int, int, bool]]:
    """Every TCP socket on the machine by inode: its local and remote port, and whether it
    listens (/proc/net/tcp{,6}: the stack binds loopback only)."""
    sockets = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            local, remote = (int(a.rsplit(":", 1)[1], 16) for a in cols[1:3])
            sockets[int(cols[9])] = (local, remote, cols[3] == "0A")
    return sockets


RELATION_FILE = re.compile(r"/base/\d+/\d+(?P<fork>_fsm|_vm|_init)?(\.\d+)?$")


def file_kind(link: str) -> str:
    """What a non-socket fd is: for PostgreSQL, a relation's file (by fork: main, free space
    map, visibility map) or a WAL segment; another file; or a pipe, epoll, eventfd."""
    if not link.startswith("/"):
        return "other"
    if "/pg_wal/" in link:
        return "file: wal"
    if match := RELATION_FILE.search(link):
        return f"file: relation {(match['fork'] or '_main')[1:]}"
    return "file"


def fd_kinds(fds: dict[str, list[str]]) -> dict[str, Counter]:
    """What each group's open fds are: TCP connections by the group at their other end
    ("-> chat" when this group dialled chat, "<- gateway" when the gateway dialled it, "client"
    for the load generator), listening sockets, unix sockets, and the rest (files, pipes,
    epoll). Measured, so a growing count says which pool grew."""
    tcp = tcp_sockets()
    owner: dict[int, str] = {}  # local port -> the group holding it
    for name, links in fds.items():
        for link in links:
            if link.startswith("socket:[") and (inode := int(link[8:-1])) in tcp:
                owner.setdefault(tcp[inode][0], name)
    listening = {local for local, _, listens in tcp.values() if listens}
    kinds: dict[str, Counter] = {}
    for name, links in fds.items():
        counts: Counter = Counter()
        for link in links:
            if not link.startswith("socket:["):
                counts[file_kind(link)] += 1
                continue
            inode = int(link[8:-1])
            if inode not in tcp:
                counts["unix"] += 1
                continue
            _, remote, listens = tcp[inode]
            peer = owner.get(remote, "client")
            if listens:
                counts["listen"] += 1
            elif remote in listening:
                counts[f"-> {peer}"] += 1
            else:
                counts[f"<- {peer}"] += 1
        kinds[name] = counts
    return kinds


def sample_processes(
    groups: dict[str, int], postmaster: int, backends: dict[int, str]
) -> dict[str, dict]:
    """Each group's figures; PostgreSQL's also by whom each of its processes serves
    (`backends`: pid -> the service a client backend serves, or the backend type)."""
    out = {}
    links: dict[str, list[str]] = {}
    by_role: dict[str, dict[str, float]] = {}
    for name, pids in group_members(groups, postmaster).items():
        rss_kb = pss = shmem = fds = alive = 0
        links[name] = []
        for pid in pids:
            try:
                rss_kb += status_kb(pid, "VmRSS:")
                pid_pss, pid_shmem = pss_kb(pid)
                pss, shmem = pss + pid_pss, shmem + pid_shmem
                folder = f"/proc/{pid}/fd"
                opened = 0
                for fd in os.listdir(folder):
                    with contextlib.suppress(OSError):  # closed meanwhile
                        links[name].append(os.readlink(f"{folder}/{fd}"))
                        opened += 1
                fds += opened
                alive += 1
            except OSError:  # gone meanwhile (a backend closed)
                continue
            if name == "postgres":
                role = by_role.setdefault(
                    backends.get(pid, "postmaster"), {"procs": 0, "private_mb": 0.0, "fds": 0}
                )
                role["procs"] += 1
                role["private_mb"] += (pid_pss - pid_shmem) / 1024
                role["fds"] += opened
        out[name] = {
            "rss_mb": round(rss_kb / 1024, 1),
            "pss_mb": round(pss / 1024, 1),
            "shmem_mb": round(shmem / 1024, 1),
            "private_mb": round((pss - shmem) / 1024, 1),
            "fds": fds,
            "procs": alive,
        }
    for name, counts in fd_kinds(links).items():
        out[name]["fd_kinds"] = dict(sorted(counts.items()))
    out["postgres"]["by_role"] = {
        role: {**figures, "private_mb": round(figures["private_mb"], 1)}
        for role, figures in sorted(by_role.items())
    }
    return out


async def backend_roles(conn: asyncpg.Connection) -> dict[int, str]:
    """PostgreSQL's processes by whom they serve: a client backend by its service's
    application_name, the others by their type (checkpointer, autovacuum worker, ...)."""
    rows = await conn.fetch(
        "SELECT pid, backend_type, application_name FROM pg_catalog.pg_stat_activity"
    )
    return {
        r["pid"]: (r["application_name"] or "?").removeprefix("lectern-")
        if r["backend_type"] == "client backend"
        else r["backend_type"]
        for r in rows
    }


async def db_connections(conn: asyncpg.Connection) -> dict[str, int]:
    """Client connections to the stack's PostgreSQL by service: each names itself in
    application_name (`lectern-chat`, ..., `lectern-auth`); this probe's own is left out."""
    rows = await conn.fetch(
        "SELECT application_name, count(*) AS n FROM pg_catalog.pg_stat_activity"
        " WHERE backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid()"
        " GROUP BY application_name"
    )
    return {(r["application_name"] or "?").removeprefix("lectern-"): r["n"] for r in rows}


def pct(values: list[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0])
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1])


def window(results: list[dict], since: float, until: float) -> dict:
    """Questions asked, ended and failed between two sample instants, and the first-token
    percentiles of those that ended in it."""
    ended = [r for r in results if r["end"] is not None and since < r["end"] <= until]
    firsts = [r["first_ms"] for r in ended if r["first_ms"] is not None and not r["error"]]
    return {
        "asked": sum(1 for r in results if since < r["start"] <= until),
        "open": sum(1 for r in results if r["end"] is None),
        "answered": sum(1 for r in ended if not r["error"]),
        "errors": dict(Counter(r["error"] for r in ended if r["error"])),
        "first_token_p50_ms": pct(firsts, 50),
        "first_token_p95_ms": pct(firsts, 95),
    }


async def soak(stack: Stack, groups: dict[str, int], postmaster: int, args) -> dict:
    results: list[dict] = []
    cpu = CpuProbe(groups, postmaster=postmaster)
    conn = await asyncpg.connect(
        stack.database_url, server_settings={"application_name": "soak-probe"}
    )
    shared_buffers = await conn.fetchval("SHOW shared_buffers")
    # The start-up's writes (migrations, the ingest) are flushed before the readers come, not by
    # the first timed checkpoint in the middle of the soak: spread over 90% of its 5 minutes,
    # that one kept every relation file it wrote open in the checkpointer (6 -> 313 fds from
    # t = 300 s to 570 s, then 7), which the last minute's mean caught as PostgreSQL's growth.
    await conn.execute("CHECKPOINT")
    samples: list[dict] = []
    start = time.monotonic()
    stop_at = start + args.duration
    try:
        readers = [
            asyncio.create_task(reader(stack.gateway_url, stop_at, tuple(args.pause), results))
            for _ in range(args.readers)
        ]
        last_cpu, last_t = cpu.snapshot(), start
        tick = 0
        while True:
            now = time.monotonic()
            roles = await backend_roles(conn)
            processes = await asyncio.to_thread(sample_processes, groups, postmaster, roles)
            cpu_now = cpu.snapshot()
            for name, figures in processes.items():
                spent = cpu_now.get(name, 0.0) - last_cpu.get(name, 0.0)
                figures["cpu_pct"] = round(100 * spent / max((now - last_t) * 1000, 1), 1)
            client = cpu_now["load generator"] - last_cpu["load generator"]
            connections = await db_connections(conn)
            for name, figures in processes.items():
                figures["db_connections"] = connections.get(name, 0)
            processes["postgres"]["db_connections"] = sum(connections.values())  # all clients
            sample = {
                "t_s": round(now - start, 1),
                "processes": processes,
                "db_connections": connections,
                "client_cpu_pct": round(100 * client / max((now - last_t) * 1000, 1), 1),
                **window(results, last_t if tick else start - 1, now),
            }
            samples.append(sample)
            print(progress_line(sample), flush=True)
            last_cpu, last_t = cpu_now, now
            if now >= stop_at:
                break
            tick += 1
            await asyncio.sleep(max(0.0, start + tick * args.interval - time.monotonic()))
        await asyncio.gather(*readers)  # the questions still open end (within their timeout)
        tail = window(results, last_t, time.monotonic())
    finally:
        await conn.close()
    return {
        "samples": samples,
        "results": results,
        "after_last_sample": tail,
        "shared_buffers": shared_buffers,
    }


def progress_line(sample: dict) -> str:
    rss = " ".join(f"{k}={v['rss_mb']:.0f}" for k, v in sample["processes"].items())
    return (
        f"t={sample['t_s']:>5.0f}s asked={sample['asked']:>4} answered={sample['answered']:>4} "
        f"open={sample['open']:>3} errors={sum(sample['errors'].values())} "
        f"p95={sample['first_token_p95_ms']}ms "
        f"rss MB: {rss}"
    )


# ---- the verdict -----------------------------------------------------------------------------


def growth_pct(before: float, after: float) -> float | None:
    """Percent growth; None for growth from nothing (a pass only if there is none)."""
    if before == 0:
        return 0.0 if after == 0 else None
    return round(100 * (after - before) / before, 1)


def memory_figure(process: str) -> str:
    """RSS for every process but PostgreSQL's. Its RSS sum counts every shared buffer once per
    backend that touched it; its PSS counts them once, but still grows as the soak's new rows
    fill the shared buffers, a cache of fixed size (`shared_buffers`, reported beside it) whose
    pages the kernel counts as they are first touched. Its backends' own memory, PSS less
    shared memory, is the figure that would show a leak."""
    return "private_mb" if process == "postgres" else "rss_mb"


MINUTE = 6  # samples in a minute at the default interval


def verdict(samples: list[dict], errors: int) -> dict:
    """Each process's figures over the minute from the 2-minute mark and over the last minute,
    and their growth; a pass if no mean grew more than 5% and nothing failed. Means of a
    minute, not two single samples: the connections (and fds) of a process include the
    questions open at the instant of a sample, 9 to 26 of them in one minute of a steady soak;
    a pool that keeps a new peak still shows as growth. The single samples are kept beside."""
    mark = next(s for s in samples if s["t_s"] >= MARK_S - 1)
    last = samples[-1]
    after_mark = [s for s in samples if s["t_s"] >= mark["t_s"]]
    rows = []
    for name in last["processes"]:
        row: dict = {"process": name}
        for figure in (memory_figure(name), "fds", "db_connections"):
            series = [s["processes"][name][figure] for s in after_mark]
            first = statistics.mean(series[:MINUTE])
            final = statistics.mean(series[-MINUTE:])
            row[figure] = {
                "at_mark": series[0],
                "end": series[-1],
                "point_growth_pct": growth_pct(series[0], series[-1]),
                "max_after_mark": max(series),
                "mean_minute_after_mark": round(first, 1),
                "mean_last_minute": round(final, 1),
                "growth_pct": growth_pct(first, final),
            }
        kinds_before = mark["processes"][name].get("fd_kinds", {})
        kinds_after = last["processes"][name].get("fd_kinds", {})
        row["fd_kinds"] = {
            kind: [kinds_before.get(kind, 0), kinds_after.get(kind, 0)]
            for kind in sorted({*kinds_before, *kinds_after})
        }
        row["pass"] = all(
            (g := row[f]["growth_pct"]) is not None and g <= GROWTH_LIMIT_PCT
            for f in (memory_figure(name), "fds", "db_connections")
        )
        rows.append(row)
    return {
        "mark_t_s": mark["t_s"],
        "end_t_s": last["t_s"],
        "open_questions": {"at_mark": mark["open"], "end": last["open"]},
        "rows": rows,
        "errors": errors,
        "pass": errors == 0 and all(r["pass"] for r in rows),
    }


def pct_text(growth: float | None) -> str:
    return "from 0" if growth is None else f"{growth:+.1f}%"


def print_verdict(report: dict) -> None:
    v = report["verdict"]
    print()
    print(
        f"machine: {report['machine']['nproc']} cpus ({report['machine']['cpu_model']}), "
        f"load {report['machine']['loadavg_start']} -> {report['machine']['loadavg_end']}"
    )
    print(
        f"{report['totals']['asked']} questions, {report['totals']['answered']} answered, "
        f"errors {report['totals']['errors']}, first token p50/p95 "
        f"{report['totals']['first_token_p50_ms']}/{report['totals']['first_token_p95_ms']} ms"
    )
    print(
        f"growth of the means of the minute from t={v['mark_t_s']:.0f}s and of the last minute"
        f" (t={v['end_t_s']:.0f}s); single samples at those two instants in brackets"
        f" (questions open then: {v['open_questions']['at_mark']}, {v['open_questions']['end']}):"
    )
    print(f"{'process':<12}{'MB (pg: private)':>30}{'fds':>30}{'db conns':>30}")
    for r in v["rows"]:
        cells = [
            f"{f['mean_minute_after_mark']} -> {f['mean_last_minute']} "
            f"{pct_text(f['growth_pct'])} [{f['at_mark']} -> {f['end']}]"
            for f in (r[memory_figure(r["process"])], r["fds"], r["db_connections"])
        ]
        print(
            f"{r['process']:<12}{cells[0]:>30}{cells[1]:>30}{cells[2]:>30}  "
            f"{'pass' if r['pass'] else 'FAIL'}"
        )
    pg = [s["processes"]["postgres"]["shmem_mb"] for s in report["samples"]]
    print(
        f"PostgreSQL's shared buffers in use (PSS of its shared memory): {pg[0]} MB at the"
        f" first sample, {pg[-1]} MB at the last, of shared_buffers = {report['shared_buffers']}"
    )
    mark = next(x for x in report["samples"] if x["t_s"] >= v["mark_t_s"])
    last = report["samples"][-1]
    roles = mark["processes"]["postgres"].get("by_role", {})
    ends = last["processes"]["postgres"].get("by_role", {})
    print("PostgreSQL's processes by whom they serve, private MB and fds, mark -> end:")
    for role in sorted({*roles, *ends}):
        a, b = roles.get(role, {}), ends.get(role, {})
        print(
            f"  {role:<28}{a.get('procs', 0):>3} -> {b.get('procs', 0):<3} procs"
            f"{a.get('private_mb', 0):>8} -> {b.get('private_mb', 0):<8} MB"
            f"{a.get('fds', 0):>6} -> {b.get('fds', 0):<6} fds"
        )
    print("open fds by kind that changed, at the mark -> at the end:")
    for r in v["rows"]:
        moved = [f"{k} {a}->{b}" for k, (a, b) in r["fd_kinds"].items() if a != b]
        if moved:
            print(f"  {r['process']:<12}{', '.join(moved)}")
    print(f"verdict: {'PASS' if v['pass'] else 'FAIL'}")


# ---- the files -------------------------------------------------------------------------------


def write_csv(out: Path, samples: list[dict]) -> None:
    with (out / "soak.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["t_s", "process", "rss_mb", "pss_mb", "fds", "procs", "cpu_pct", "db_connections"]
        )
        for s in samples:
            for name, p in s["processes"].items():
                names = ("rss_mb", "pss_mb", "fds", "procs", "cpu_pct", "db_connections")
                figures = [p[k] for k in names]
                w.writerow([s["t_s"], name, *figures])
    with (out / "soak-windows.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_s", "asked", "answered", "errors", "first_token_p50_ms", "p95_ms"])
        for s in samples:
            errors = sum(s["errors"].values())
            p50, p95 = s["first_token_p50_ms"], s["first_token_p95_ms"]
            w.writerow([s["t_s"], s["asked"], s["answered"], errors, p50, p95])


COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def nice_max(value: float) -> float:
    """The axis's top: the smallest round number (1, 1.5, 2, 3, 4, 5, 6, 8 x 10^k) above the
    largest value, at least 4 so the four grid steps of a small count are whole."""
    step = 1.0
    while True:
        for m in (1, 1.5, 2, 3, 4, 5, 6, 8):
            if step * m >= max(value * 1.05, 4):
                return step * m
        step *= 10


def svg_chart(samples: list[dict], title: str) -> str:
    """Four panels over time (RSS MB, open fds, DB connections per process; first-token p95),
    a dashed line at the 2-minute mark, one legend: a plain SVG any browser shows."""
    names = list(samples[0]["processes"])
    colour = dict(zip(names, COLOURS, strict=False))
    t = [s["t_s"] for s in samples]
    t_max = max(t[-1], 1)
    panels = [
        ("RSS (MB)", {n: [s["processes"][n]["rss_mb"] for s in samples] for n in names}),
        ("open fds", {n: [s["processes"][n]["fds"] for s in samples] for n in names}),
        (
            "PostgreSQL connections",
            {n: [s["processes"][n]["db_connections"] for s in samples] for n in names},
        ),
        ("first token p95 (ms)", {"p95": [s["first_token_p95_ms"] for s in samples]}),
    ]
    width, left, right, top, height, gap = 900, 70, 140, 60, 170, 50
    total = top + len(panels) * (height + gap)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{total}" fill="white"/>',
        f'<text x="{left}" y="22" font-size="15">{title}</text>',
    ]
    plot_w = width - left - right
    for i, (label, series) in enumerate(panels):
        y0 = top + i * (height + gap)
        values = [v for vs in series.values() for v in vs if v is not None]
        v_max = nice_max(max(values, default=1))

        def x(ts: float) -> float:
            return left + plot_w * ts / t_max

        def y(v: float, y0: int = y0, v_max: float = v_max) -> float:
            return y0 + height - height * v / v_max

        parts.append(f'<text x="{left}" y="{y0 - 6}" font-weight="bold">{label}</text>')
        parts.append(
            f'<rect x="{left}" y="{y0}" width="{plot_w}" height="{height}" fill="none" '
            'stroke="#999"/>'
        )
        for k in range(5):
            v = v_max * k / 4
            parts.append(
                f'<line x1="{left}" x2="{left + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                'stroke="#eee"/>'
                f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.0f}</text>'
            )
        for minute in range(int(t_max // 60) + 1):
            parts.append(
                f'<text x="{x(minute * 60):.1f}" y="{y0 + height + 15}" '
                f'text-anchor="middle">{minute} min</text>'
            )
        parts.append(
            f'<line x1="{x(MARK_S):.1f}" x2="{x(MARK_S):.1f}" y1="{y0}" y2="{y0 + height}" '
            'stroke="#555" stroke-dasharray="4 3"/>'
        )
        for name, vs in series.items():
            points = " ".join(
                f"{x(ts):.1f},{y(v):.1f}" for ts, v in zip(t, vs, strict=True) if v is not None
            )
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{colour.get(name, "#000")}" '
                'stroke-width="1.6"/>'
            )
    for k, name in enumerate(names):
        yy = top + 14 + k * 18
        parts.append(
            f'<line x1="{width - right + 15}" x2="{width - right + 35}" y1="{yy}" y2="{yy}" '
            f'stroke="{colour[name]}" stroke-width="3"/>'
            f'<text x="{width - right + 40}" y="{yy + 4}">{name}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# ---- the run ---------------------------------------------------------------------------------


def machine() -> dict:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    return {"nproc": os.cpu_count(), "cpu_model": model}


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=200)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of asking")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "soak")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--pause", type=float, nargs=2, default=[5.0, 15.0], metavar=("MIN", "MAX"))
    parser.add_argument("--ttft-ms", type=float, default=300.0)
    parser.add_argument("--data-dir", type=Path, help="the stack's stores and logs, kept")
    parser.add_argument("--serve-fake", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        serve_fake(args.serve_fake, args.ttft_ms)
        return 0

    if args.duration < MARK_S + args.interval:
        parser.error(f"--duration must pass the {MARK_S:.0f} s mark by a sample at least")
    args.out.mkdir(parents=True, exist_ok=True)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="lectern-soak-"))
    fake_port = free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    fake = subprocess.Popen(
        [sys.executable, __file__, "--serve-fake", str(fake_port), "--ttft-ms", str(args.ttft_ms)],
        start_new_session=True,
    )
    stack = None
    try:
        wait_http(f"{fake_url}/health")
        stack = start_stack(data_dir, fake_url)
        book = ingest_book(stack)
        print(f"ingested book/: {book['files']} files, {book['chunks']} chunks", flush=True)
        groups = {name: p.popen.pid for name, p in stack.processes.items()}
        groups["fake_gemini"] = fake.pid
        postmaster = int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        load_start = loadavg()
        run = asyncio.run(soak(stack, groups, postmaster, args))
        load_end = loadavg()
    finally:
        if stack is not None:
            stack.stop()
        fake.terminate()
        fake.wait(10)
        if args.data_dir is None:  # a temp folder of this run's stores and logs
            shutil.rmtree(data_dir, ignore_errors=True)
    results = run["results"]
    errors = Counter(r["error"] for r in results if r["error"])
    firsts = [r["first_ms"] for r in results if r["first_ms"] is not None and not r["error"]]
    report = {
        "command": " ".join(["python", "bench/soak.py", *sys.argv[1:]]),
        "started_at": started_at,
        "machine": {**machine(), "loadavg_start": load_start, "loadavg_end": load_end},
        "config": {
            "readers": args.readers,
            "duration_s": args.duration,
            "interval_s": args.interval,
            "pause_s": args.pause,
            "fake_ttft_ms": args.ttft_ms,
            "chunks": book["chunks"],
            "cpu_tick_ms": TICK_MS,
        },
        "totals": {
            "asked": len(results),
            "answered": sum(1 for r in results if not r["error"]),
            "errors": sum(errors.values()),
            "errors_by_kind": dict(errors),
            "first_token_p50_ms": pct(firsts, 50),
            "first_token_p95_ms": pct(firsts, 95),
            "after_last_sample": run["after_last_sample"],
        },
        "verdict": verdict(run["samples"], sum(errors.values())),
        "shared_buffers": run["shared_buffers"],
        "samples": run["samples"],
    }
    (args.out / "soak.json").write_text(json.dumps(report, indent=1) + "\n")
    write_csv(args.out, run["samples"])
    title = (
        f"Soak: {args.readers} readers, {args.duration / 60:.0f} min, "
        f"{os.cpu_count()} CPUs, {started_at}"
    )
    (args.out / "soak.svg").write_text(svg_chart(run["samples"], title))
    print_verdict(report)
    print(f"wrote {args.out}/soak.json, soak.csv, soak-windows.csv, soak.svg")
    return 0 if report["verdict"]["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
