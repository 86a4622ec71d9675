"""`lectern ingest PATH`: upload a folder of Markdown/MDX/reStructuredText to the running
retrieval service (through the gateway's admin API) with a progress bar and a final summary.

It talks to the service instead of opening the stores itself: in embedded mode Qdrant's folder
is locked by the retrieval process.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lectern_dev import REPO_ROOT

SUFFIXES = (".md", ".mdx", ".markdown", ".rst")
NDJSON = "application/x-ndjson"


def source_files(root: Path) -> list[tuple[str, bytes]]:
    """(path relative to root, bytes) of every document below root; hidden folders skipped."""
    return [
        (p.relative_to(root).as_posix(), p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and p.suffix.lower() in SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]


def ingest_form(source: str, files: list[tuple[str, bytes]], url_prefix: str | None = None) -> dict:
    """The multipart body of `POST /api/admin/ingest`, as httpx's `data=` and `files=`."""
    return {
        "data": {"source": source, **({"url_prefix": url_prefix} if url_prefix else {})},
        "files": [("files", (path, data, "application/octet-stream")) for path, data in files],
    }


def post_files(
    url: str,
    *,
    source: str,
    files: list[tuple[str, bytes]],
    headers: dict[str, str],
    url_prefix: str | None = None,
    timeout_s: float = 600.0,
) -> httpx.Response:
    """Upload `files` as the whole of `source` to the gateway at `url` in one request and
    return its answer (the ingest summary as JSON when it is 200)."""
    return httpx.post(
        f"{url.rstrip('/')}/api/admin/ingest",
        headers=headers,
        timeout=httpx.Timeout(timeout_s, connect=10.0),
        **ingest_form(source, files, url_prefix),
    )


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def default_source(root: Path) -> str:
    return re.sub(r"[^a-z0-9]+", "-", root.resolve().name.lower()).strip("-") or "book"


def admin_token(data_dir: Path) -> str:
    """ADMIN_TOKEN from the environment, else the one `lectern run` keeps with its data."""
    if token := os.environ.get("ADMIN_TOKEN"):
        return token
    secrets = data_dir / "secrets.json"
    if secrets.exists():
        return json.loads(secrets.read_text())["ADMIN_TOKEN"]
    raise SystemExit(
        "lectern ingest: set ADMIN_TOKEN (or run it next to `lectern run`'s "
        f"data folder; {secrets} not found)"
    )


def stream_ingest(
    *,
    url: str,
    token: str,
    source: str,
    files: list[tuple[str, bytes]],
    url_prefix: str | None,
    console: Console,
    timeout_s: float,
) -> dict:
    """Upload and follow the service's progress events; returns the summary."""
    headers = {**bearer(token), "accept": NDJSON}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"uploading {len(files)} files", total=None)
        with httpx.stream(
            "POST",
            f"{url.rstrip('/')}/api/admin/ingest",
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            **ingest_form(source, files, url_prefix),
        ) as response:
            if response.status_code != 200:
                response.read()
                raise SystemExit(f"lectern ingest: {response.status_code} {_error(response)}")
            for line in response.iter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                if event["event"] == "start":
                    progress.update(
                        task,
                        description="embedding new chunks",
                        total=event["embeddings"],
                        completed=0,
                    )
                elif event["event"] == "progress":
                    progress.update(task, completed=event["embedded"])
                elif event["event"] == "summary":
                    return event
                elif event["event"] == "error":
                    raise SystemExit(f"lectern ingest: failed: {event['message']}")
    raise SystemExit("lectern ingest: the service closed the stream without a summary")


def _error(response: httpx.Response) -> str:
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


def print_summary(console: Console, summary: dict) -> None:
    console.print(
        f"[bold]{summary['source']}[/]: {summary['files']} files, {summary['chunks']} chunks "
        f"({summary['new']} new, {summary['updated']} updated, {summary['unchanged']} "
        f"unchanged, {summary['removed']} removed), {summary['embeddings_computed']} "
        f"embeddings computed, {summary['seconds']:.2f} s"
    )


def run(args) -> int:
    root = Path(args.path)
    if not root.is_dir():
        print(f"lectern ingest: {root} is not a folder", file=sys.stderr)
        return 2
    files = source_files(root)
    if not files:
        print(
            f"lectern ingest: no Markdown, MDX or reStructuredText files in {root}", file=sys.stderr
        )
        return 2
    console = Console(stderr=True)
    summary = stream_ingest(
        url=args.url,
        token=admin_token(Path(args.data_dir)),
        source=args.source or default_source(root),
        files=files,
        url_prefix=args.url_prefix,
        console=console,
        timeout_s=args.timeout,
    )
    print_summary(console, summary)
    if args.json:
        print(json.dumps(summary))
    return 0


def post_book(stack) -> httpx.Response:
    """Upload `book/` (the sample book, source `book`, chapters under /docs/) to the stack."""
    return post_files(
        stack.gateway_url,
        source="book",
        files=source_files(REPO_ROOT / "book"),
        headers=bearer(stack.secrets["ADMIN_TOKEN"]),
        url_prefix="/docs/",
        timeout_s=1800.0,
    )


def ingest_book_on_start(stack) -> None:
    """`lectern run` hook: ingest `book/` in the background once the stack is up, so the
    product is usable at once; files unchanged since the last run cost nothing."""

    def work() -> None:
        try:
            response = post_book(stack)
        except httpx.HTTPError as exc:
            print(f"lectern: ingesting book/ failed: {type(exc).__name__}", flush=True)
            return
        if response.status_code != 200:
            print(
                f"lectern: ingesting book/ failed: {response.status_code} {_error(response)}",
                flush=True,
            )
            return
        print_summary(Console(), response.json())

    if (REPO_ROOT / "book").is_dir():
        print("lectern: ingesting book/ in the background...", flush=True)
        threading.Thread(target=work, name="ingest-book", daemon=True).start()
