"""Fixtures for the summary tests: chapters of our own (real Gazebo docs ingested under our own
sources, so other areas' data is never disturbed), a clean cache per test, extra summary
replicas on the same stores, and helpers to count model calls and read SSE streams."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest

from lectern_dev.stack import Process, Stack, free_port
from tests.support.stack import admin_headers, internal_headers

MODEL_METHODS = ("generateContent", "streamGenerateContent")


@dataclass(frozen=True)
class Event:
    id: int
    name: str
    data: dict


def parse_sse(body: str) -> list[Event]:
    events = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            fields[name] = value
        if "event" in fields:
            events.append(Event(int(fields["id"]), fields["event"], orjson.loads(fields["data"])))
    return events


def model_calls(fake_gemini: httpx.Client) -> list[dict]:
    """Generation requests the fake Gemini received (embedding calls left out)."""
    requests = fake_gemini.get("/_fake/requests").json()["requests"]
    return [r for r in requests if r["kind"] in MODEL_METHODS]


def outcome_count(stack: Stack, kind: str, outcome: str) -> float:
    """lectern_summary_outcomes_total{kind, outcome} on the gateway's summary replica."""
    text = httpx.get(f"{stack.config.url('summary')}/metrics").text
    line = f'lectern_summary_outcomes_total{{kind="{kind}",outcome="{outcome}"}} '
    return next((float(row[len(line) :]) for row in text.splitlines() if row.startswith(line)), 0.0)


def ingest(stack: Stack, source: str, files: dict[str, str]) -> dict:
    """Upload `files` (path -> text) as the whole of `source` through the admin API."""
    with httpx.Client(base_url=stack.gateway_url, timeout=120.0) as client:
        response = client.post(
            "/api/admin/ingest",
            headers=admin_headers(stack),
            data={"source": source},
            files=[
                ("files", (path, text.encode(), "text/markdown")) for path, text in files.items()
            ],
        )
    assert response.status_code == 200, response.text
    return response.json()


def chapter_id_of(source: str, path: str) -> str:
    return f"{source}--" + path.rsplit(".", 1)[0].replace("/", "--")


def run_sql(stack: Stack, sql: str, *args: object) -> list[dict]:
    async def go() -> list[dict]:
        conn = await asyncpg.connect(stack.database_url)
        try:
            return [dict(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return asyncio.run(go())


def stored(stack: Stack, chapter_id: str) -> list[dict]:
    return run_sql(
        stack,
        """SELECT kind, audience, content_hash, body, hit_count, model
                             FROM summary.generations WHERE chapter_id = $1
                             ORDER BY kind, audience""",
        chapter_id,
    )


CORPUS_SOURCE = "summary-gazebo"
# Real third-party docs (CC BY 4.0, read from the shared folder, never copied into the repo).
CORPUS_FILES = ("common/migrating_gazebo_classic_ros2_packages.md", "common/get_started.md")


@pytest.fixture(scope="session")
def corpus_chapters(stack: Stack, shared_dir: Path) -> list[dict]:
    """Two Gazebo documentation pages ingested as a source of our own; each with its full
    text as the retrieval service serves it."""
    root = shared_dir / "corpus" / "gazebo"
    ingest(stack, CORPUS_SOURCE, {path: (root / path).read_text() for path in CORPUS_FILES})
    chapters = []
    with httpx.Client(
        base_url=stack.config.url("retrieval"), headers=internal_headers(stack)
    ) as retrieval:
        for path in CORPUS_FILES:
            response = retrieval.get(f"/internal/chapters/{chapter_id_of(CORPUS_SOURCE, path)}")
            assert response.status_code == 200, response.text
            chapters.append(response.json())
    return chapters


@pytest.fixture
def clean_cache(stack: Stack) -> None:
    run_sql(stack, "TRUNCATE summary.generations")


@pytest.fixture
def chapter(corpus_chapters: list[dict], clean_cache: None) -> dict:
    """A chapter short enough for one model call, with nothing cached for it."""
    return corpus_chapters[1]


@pytest.fixture
def long_chapter(corpus_chapters: list[dict], clean_cache: None) -> dict:
    """A long chapter with many code blocks, with nothing cached for it."""
    return corpus_chapters[0]


@dataclass
class Replica:
    """A second summary service on the same stores: a replica as the gateway would balance to."""

    url: str
    headers: dict[str, str]
    process: Process

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=30.0)


def start_replica(stack: Stack, name: str, env: dict[str, str]) -> Replica:
    port = free_port()
    process = Process(
        name,
        [sys.executable, "-m", "lectern_summary"],
        env={**stack.service_env(), "SUMMARY_PORT": str(port), **env},
        log=stack.logs / f"{name}.log",
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        assert process.alive(), process.tail()
        try:
            if httpx.get(f"{url}/ready", timeout=1.0).status_code == 200:
                return Replica(url, internal_headers(stack), process)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.stop()
    raise AssertionError(f"{name} did not become ready:\n{process.tail()}")


@pytest.fixture(scope="session")
def replica(stack: Stack) -> Iterator[Replica]:
    """Replica B, with model timeouts of 2 s (so a slow model can be shown to time out) and
    SSE keep-alive comments every 0.3 s."""
    r = start_replica(
        stack,
        "summary-b",
        {
            "GEMINI_FIRST_TOKEN_TIMEOUT_S": "2",
            "GEMINI_BETWEEN_TOKENS_TIMEOUT_S": "2",
            "GEMINI_REQUEST_TIMEOUT_S": "2",
            "SUMMARY_SSE_KEEPALIVE_S": "0.3",
        },
    )
    yield r
    r.process.stop()


@pytest.fixture
def replica_factory(stack: Stack) -> Iterator[Callable[..., Replica]]:
    started: list[Replica] = []

    def make(name: str, **env: str) -> Replica:
        r = start_replica(stack, name, env)
        started.append(r)
        return r

    yield make
    for r in started:
        r.process.stop()
