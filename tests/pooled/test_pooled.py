"""Every service through PgBouncer in transaction mode (what Neon's pooled URL is): migrations
from two replicas of every service at once, ingests, a burst of answers and summaries' single
flight. Through such a pooler consecutive statements of one client may run on different
server connections, so session state (search_path, named prepared statements, session
advisory locks) is not there to rely on."""

from __future__ import annotations

import asyncio
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from lectern_common import db
from lectern_dev import REPO_ROOT
from lectern_dev.harness.books import chapter_id_of, ingest
from lectern_dev.harness.chat import ask, settled_answer
from lectern_dev.harness.database import create_database, drop_database, run_sql
from lectern_dev.harness.pgbouncer import PgBouncer
from lectern_dev.harness.replicas import wait_for_http
from lectern_dev.harness.services import model_calls
from lectern_dev.stack import Process, Stack, auth_command, free_port

PYTHON_SERVICES = ("chat", "retrieval", "profile", "summary")
SOURCE = "pooled-robots"
FILES = {
    "arms/joints.md": (
        "# Joints\n\nA revolute joint rotates about one axis; a prismatic joint slides along "
        "one. The URDF names each joint, its parent link and its child link.\n"
    ),
    "arms/grippers.md": (
        "# Grippers\n\nA parallel gripper closes two fingers on an object. Its controller "
        "limits the force so that a soft object is not crushed.\n"
    ),
}


def migrations_of(service: str) -> list[str]:
    folder = REPO_ROOT / "services" / service / f"lectern_{service}" / "migrations"
    return sorted(p.name for p in folder.glob("*.sql"))


@pytest.fixture
def fresh_database(admin_url: str):
    url = asyncio.run(create_database(admin_url))
    yield url
    asyncio.run(drop_database(admin_url, url))


def test_two_replicas_of_every_service_migrate_one_fresh_database_at_once(
    stack: Stack, pgbouncer: PgBouncer, fresh_database: str, tmp_path: Path
):
    pooled = pgbouncer.url(fresh_database)
    processes: list[tuple[Process, str]] = []
    try:
        for replica in ("a", "b"):
            for service in PYTHON_SERVICES:
                port = free_port()
                env = {
                    **stack.env_of(service),
                    "DATABASE_URL": pooled,
                    f"{service.upper()}_PORT": str(port),
                    # Each retrieval replica keeps its embedded index in its own folder.
                    "QDRANT_PATH": str(tmp_path / f"qdrant-{replica}"),
                }
                name = f"{service}-{replica}"
                args = [sys.executable, "-m", f"lectern_{service}"]
                process = Process(name, args, env=env, log=tmp_path / f"{name}.log")
                processes.append((process, f"http://127.0.0.1:{port}/ready"))
            port = free_port()
            env = {**stack.env_of("auth"), "DATABASE_URL": pooled, "AUTH_PORT": str(port)}
            args = auth_command()
            process = Process(f"auth-{replica}", args, env=env, log=tmp_path / f"auth-{replica}")
            processes.append((process, f"http://127.0.0.1:{port}/api/auth/ok"))
        for process, ready in processes:
            wait_for_http(ready, process, timeout_s=90)
    finally:
        for process, _ in processes:
            process.stop()

    for service in PYTHON_SERVICES:
        rows = run_sql(
            fresh_database,
            f"SELECT name FROM {service}.schema_migrations ORDER BY name",  # noqa: S608
        )
        assert [r["name"] for r in rows] == migrations_of(service)
    tables = run_sql(
        fresh_database,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'auth'",
    )
    assert {"user", "session", "account", "jwks"} <= {r["table_name"] for r in tables}
    for process, _ in processes:
        log = process.log.read_text(errors="replace")
        assert "Traceback" not in log, f"{process.name}:\n{log[-3000:]}"
        assert '"level": "error"' not in log, f"{process.name}:\n{log[-3000:]}"


def test_the_advisory_lock_through_the_pooler_admits_one_holder_and_is_given_back(
    pgbouncer: PgBouncer, direct_url: str
):
    # What the migrations and the ingest lock rely on, with more holders than the pooler has
    # server connections: one inside at a time, and nothing left held afterwards. A session
    # lock here lets a second holder in on the server connection the first one left it on.
    async def most_inside_at_once() -> int:
        pool = await db.create_pool(
            pgbouncer.url(direct_url), schema="locktest", pooled=True, min_size=1, max_size=20
        )
        inside = most = 0

        async def one() -> None:
            nonlocal inside, most
            async with pool.acquire() as conn, db.advisory_lock(conn, "test:pooled", wait_s=60):
                inside += 1
                most = max(most, inside)
                await conn.execute("SELECT pg_sleep(0.05)")
                inside -= 1

        try:
            await asyncio.gather(*(one() for _ in range(12)))
        finally:
            await pool.close()
        return most

    assert asyncio.run(most_inside_at_once()) == 1
    held = run_sql(
        direct_url,
        "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory'"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    assert held == [{"n": 0}]


@pytest.fixture(scope="module")
def ingested(stack: Stack) -> dict:
    return ingest(stack, SOURCE, FILES, timeout=120)


def test_ingest_through_the_pooler_stores_and_serves_the_chapters(
    stack: Stack, gateway: httpx.Client, ingested: dict, direct_url: str
):
    assert ingested["files"] == 2 and ingested["new"] == 2
    rows = run_sql(
        direct_url,
        "SELECT chapter_id FROM retrieval.documents WHERE source = $1 ORDER BY 1",
        SOURCE,
    )
    assert [r["chapter_id"] for r in rows] == sorted(chapter_id_of(SOURCE, p) for p in FILES)
    search = gateway.post("/api/search", json={"query": "prismatic joint slides", "top_k": 3})
    assert search.status_code == 200, search.text
    assert search.json()["results"][0]["chapter_id"] == chapter_id_of(SOURCE, "arms/joints.md")
    # Unchanged files embed nothing: the registry written through the pooler is read back.
    again = ingest(stack, SOURCE, FILES, timeout=120)
    assert again["unchanged"] == 2 and again["embeddings_computed"] == 0


def test_concurrent_ingests_take_turns_under_the_ingest_lock(stack: Stack, direct_url: str):
    # Several sources at once, twice over: each ingest waits for the one before it (the lock
    # is taken and given back on the same server connection), none hangs or fails.
    sources = [f"pooled-lock-{i}" for i in range(4)]

    def one(i: int) -> dict:
        source = sources[i % 4]
        text = f"# Part {i % 4}\n\nServo number {i % 4} drives the wrist of arm {i % 4}.\n"
        return ingest(stack, source, {"part.md": text}, timeout=60)

    with ThreadPoolExecutor(8) as pool:
        summaries = list(pool.map(one, range(8)))
    assert all(s["files"] == 1 for s in summaries)
    assert sorted(s["new"] for s in summaries) == [0, 0, 0, 0, 1, 1, 1, 1]
    rows = run_sql(
        direct_url,
        "SELECT source, count(*) AS n FROM retrieval.documents WHERE source = ANY($1)"
        " GROUP BY source",
        sources,
    )
    assert {r["source"]: r["n"] for r in rows} == dict.fromkeys(sources, 1)


def test_a_burst_of_twenty_answers_through_the_pooler_all_complete_and_are_stored(
    stack: Stack, gateway: httpx.Client, fake_gemini: httpx.Client, ingested: dict
):
    fake_gemini.post("/_fake/config", json={"ttft_ms": 200})
    barrier = threading.Barrier(20)

    def one(i: int):
        barrier.wait()
        return ask(gateway, {"message": f"How does a prismatic joint move? ({i})"}, timeout=120)

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(one, range(20)))
    assert [a.status for a in answers] == [200] * 20, [a.body for a in answers]
    assert [a.last.event for a in answers] == ["done"] * 20, [a.events[-1] for a in answers]
    for answer in answers:
        assert answer.named("sources") and answer.text
        stored = settled_answer(gateway, answer, answer.guest)
        assert stored["status"] == "complete"
        assert stored["content"] == answer.text


def test_many_cold_summary_requests_through_the_pooler_make_one_model_call(
    gateway: httpx.Client, fake_gemini: httpx.Client, ingested: dict, direct_url: str
):
    chapter = chapter_id_of(SOURCE, "arms/grippers.md")
    run_sql(direct_url, "DELETE FROM summary.generations WHERE chapter_id = $1", chapter)
    # A slow model keeps the first generation in flight while the others arrive.
    fake_gemini.post("/_fake/config", json={"ttft_ms": 800})
    barrier = threading.Barrier(20)

    def one(_: int) -> httpx.Response:
        barrier.wait()
        return gateway.get(f"/api/summary/chapters/{chapter}", timeout=60)

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(one, range(20)))
    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses]
    bodies = [r.json() for r in responses]
    assert len({b["summary"] for b in bodies}) == 1
    assert sum(not b["cached"] for b in bodies) == 1
    assert len(model_calls(fake_gemini)) == 1
    rows = run_sql(
        direct_url, "SELECT count(*) AS n FROM summary.generations WHERE chapter_id = $1", chapter
    )
    assert rows == [{"n": 1}]
