"""Upload the sample book (`book/`) through the gateway's admin API, so chat and summary tests
have chapters to search. Idempotent: a second call finds every file unchanged and embeds nothing."""

from __future__ import annotations

from pathlib import Path

import httpx

from lectern_dev.ingest import source_files
from lectern_dev.stack import REPO_ROOT, Stack
from tests.support.stack import admin_headers

BOOK_DIR = REPO_ROOT / "book"


def upload_source(
    stack: Stack, root: Path, source: str, *, url_prefix: str | None = None, timeout: float = 600.0
) -> dict:
    """POST /api/admin/ingest with every document of `root`; returns the ingest summary."""
    files = [("files", (path, data, "text/markdown")) for path, data in source_files(root)]
    data = {"source": source, **({"url_prefix": url_prefix} if url_prefix else {})}
    response = httpx.post(
        f"{stack.gateway_url}/api/admin/ingest",
        data=data,
        files=files,
        headers=admin_headers(stack),
        timeout=timeout,
    )
    response.raise_for_status()
    return response.json()


def ingest_book(stack: Stack) -> dict:
    """Ingest `book/` as source `book` (chapter ids like `book--02-ros2-nodes`)."""
    return upload_source(stack, BOOK_DIR, "book", url_prefix="/docs/")
