"""The demo reader page (`/` and `/static/*`), a plain HTML/JS client of the public API whose
files live in the repository's top-level `web/` folder."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

# The page loads nothing but its own files and talks only to its own origin; a strict policy
# means injected markup (should any slip through) could neither run script nor send data away.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
# Revalidate every time (ETag makes that cheap), so a deployed change is seen at once.
PAGE_HEADERS = {"cache-control": "no-cache", "content-security-policy": CONTENT_SECURITY_POLICY}


class PageFiles(StaticFiles):
    """The page's scripts and styles, served with the same headers as the page."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(PAGE_HEADERS)
        return response


def mount_reader_page(app: FastAPI, web_dir: Path) -> None:
    """Serve `web_dir/index.html` at `/` and the folder's files under `/static/`; a missing
    folder stops the app from starting (StaticFiles checks it) instead of answering 404s."""
    index = web_dir / "index.html"

    @app.get("/", include_in_schema=False)
    async def reader_page() -> FileResponse:
        return FileResponse(index, headers=PAGE_HEADERS)

    app.mount("/static", PageFiles(directory=web_dir), name="static")
