"""Documents uploaded through the gateway's admin API (`POST /api/admin/ingest`): the sample
book (`book/`), a folder, or a few files given inline. Idempotent like the service: uploading
unchanged files again embeds nothing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import httpx

from lectern_dev import REPO_ROOT
from lectern_dev.harness.services import admin_headers
from lectern_dev.ingest import post_files, source_files
from lectern_dev.stack import Stack

BOOK_DIR = REPO_ROOT / "book"
Files = Mapping[str, str | bytes] | Iterable[tuple[str, bytes]]


def upload(
    stack: Stack,
    source: str,
    files: Files,
    *,
    url_prefix: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 600.0,
) -> httpx.Response:
    """POST `files` (path -> text or bytes, or (path, bytes) pairs) as the whole of `source`,
    with the admin token unless `headers` say otherwise; the response, whatever its status."""
    pairs = files.items() if isinstance(files, Mapping) else files
    return post_files(
        stack.gateway_url,
        source=source,
        files=[(path, body.encode() if isinstance(body, str) else body) for path, body in pairs],
        url_prefix=url_prefix,
        headers=admin_headers(stack) if headers is None else headers,
        timeout_s=timeout,
    )


def ingest(
    stack: Stack,
    source: str,
    files: Files,
    *,
    url_prefix: str | None = None,
    timeout: float = 600.0,
) -> dict:
    """Upload `files` as `source`; the ingest summary (the upload must succeed)."""
    response = upload(stack, source, files, url_prefix=url_prefix, timeout=timeout)
    if response.status_code != 200:
        raise RuntimeError(f"ingesting {source} failed: {response.status_code} {response.text}")
    return response.json()


def ingest_folder(
    stack: Stack, root: Path, source: str, *, url_prefix: str | None = None, timeout: float = 600.0
) -> dict:
    """Upload every document below `root` as `source`; the ingest summary."""
    return ingest(stack, source, source_files(root), url_prefix=url_prefix, timeout=timeout)


def ingest_book(stack: Stack) -> dict:
    """Ingest `book/` as source `book` (chapter ids like `book--02-ros2-nodes`)."""
    return ingest_folder(stack, BOOK_DIR, "book", url_prefix="/docs/")


def chapter_id_of(source: str, path: str) -> str:
    """The id retrieval gives the chapter of `path` in `source` (`book/a/b.md` -> `book--a--b`)."""
    return f"{source}--" + path.rsplit(".", 1)[0].replace("/", "--")
