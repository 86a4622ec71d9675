"""Fixtures of the retrieval tests: a retrieval-only stack with the local embedder (the main
stack is shared with chat and summary tests, so sources that tests add and change live here)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from lectern_dev.harness.books import ingest_folder
from lectern_dev.stack import Stack


@pytest.fixture(scope="session")
def ingest_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder inside the stack's allowed ingest roots, for folder-ingestion tests."""
    return tmp_path_factory.mktemp("ingest-root")


@pytest.fixture(scope="session")
def local_stack(make_stack: Callable[..., Stack], shared_dir: Path, ingest_root: Path) -> Stack:
    """Its own database and Qdrant folder (every make_stack stack has both)."""
    env = {
        "EMBEDDINGS_PROVIDER": "local",
        "RETRIEVAL_INGEST_ROOTS": f"{shared_dir / 'corpus'},{ingest_root}",
    }
    return make_stack("retrieval-local", services=("retrieval", "profile"), extra_env=env)


@pytest.fixture(scope="session")
def corpora(local_stack: Stack, shared_dir: Path) -> dict[str, dict]:
    """Both shared corpora ingested (slow the first time: every chunk is embedded on the CPU)."""
    return {
        name: ingest_folder(local_stack, shared_dir / "corpus" / name, name, timeout=7200)
        for name in ("gazebo", "ros2")
    }
