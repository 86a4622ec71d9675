"""Fixtures of the retrieval tests: a retrieval-only stack with the local embedder (the main
stack is shared with chat and summary tests, so sources that tests add and change live here)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lectern_dev.stack import Stack, create_database, drop_database
from tests.support.book import upload_source


@pytest.fixture(scope="session")
def ingest_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder inside the stack's allowed ingest roots, for folder-ingestion tests."""
    return tmp_path_factory.mktemp("ingest-root")


@pytest.fixture(scope="session")
def local_stack(make_stack: Callable[..., Stack], shared_dir: Path,
                ingest_root: Path) -> Iterator[Stack]:
    env = {"EMBEDDINGS_PROVIDER": "local",
           "RETRIEVAL_INGEST_ROOTS": f"{shared_dir / 'corpus'},{ingest_root}"}
    admin = os.environ.get("DATABASE_URL")
    # With a shared PostgreSQL server, stacks share one database: this one gets its own, since
    # its registry must match its own Qdrant folder.
    url = asyncio.run(create_database(admin)) if admin else None
    if url:
        env["DATABASE_URL"] = url
    stack = make_stack("retrieval-local", services=("retrieval", "profile"), extra_env=env)
    yield stack
    if admin and url:
        stack.stop()
        asyncio.run(drop_database(admin, url))


@pytest.fixture(scope="session")
def corpora(local_stack: Stack, shared_dir: Path) -> dict[str, dict]:
    """Both shared corpora ingested (slow the first time: every chunk is embedded on the CPU)."""
    return {name: upload_source(local_stack, shared_dir / "corpus" / name, name, timeout=7200)
            for name in ("gazebo", "ros2")}
