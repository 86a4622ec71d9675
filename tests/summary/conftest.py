"""Fixtures for the summary tests: chapters of our own (real Gazebo docs ingested under our own
sources, so other areas' data is never disturbed), a clean cache per test, extra summary
replicas on the same stores, and what the summary service stored for a chapter."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from lectern_dev.harness.books import chapter_id_of, ingest
from lectern_dev.harness.database import run_sql
from lectern_dev.harness.replicas import Replica, start_replica
from lectern_dev.harness.services import internal_headers
from lectern_dev.stack import Stack


def stored_rows(stack: Stack, chapter: str) -> list[dict]:
    return run_sql(
        stack.database_url,
        """SELECT kind, audience, content_hash, body, hit_count, model
             FROM summary.generations WHERE chapter_id = $1
            ORDER BY kind, audience""",
        chapter,
    )


@pytest.fixture(scope="session")
def stored() -> Callable[[Stack, str], list[dict]]:
    """stored(stack, chapter_id): the generations the summary service keeps for a chapter."""
    return stored_rows


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
    run_sql(stack.database_url, "TRUNCATE summary.generations")


@pytest.fixture
def chapter(corpus_chapters: list[dict], clean_cache: None) -> dict:
    """A chapter short enough for one model call, with nothing cached for it."""
    return corpus_chapters[1]


@pytest.fixture
def long_chapter(corpus_chapters: list[dict], clean_cache: None) -> dict:
    """A long chapter with many code blocks, with nothing cached for it."""
    return corpus_chapters[0]


@pytest.fixture(scope="session")
def replica(stack: Stack) -> Iterator[Replica]:
    """Replica B, with model timeouts of 2 s (so a slow model can be shown to time out) and
    SSE keep-alive comments every 0.3 s."""
    r = start_replica(
        stack,
        "summary",
        "summary-b",
        {
            "GEMINI_FIRST_TOKEN_TIMEOUT_S": "2",
            "GEMINI_BETWEEN_TOKENS_TIMEOUT_S": "2",
            "GEMINI_REQUEST_TIMEOUT_S": "2",
            "SUMMARY_SSE_KEEPALIVE_S": "0.3",
        },
    )
    yield r
    r.stop()


@pytest.fixture
def replica_factory(stack: Stack) -> Iterator[Callable[..., Replica]]:
    started: list[Replica] = []

    def make(name: str, **env: str) -> Replica:
        r = start_replica(stack, "summary", name, env)
        started.append(r)
        return r

    yield make
    for r in started:
        r.stop()
