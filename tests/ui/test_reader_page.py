"""The demo reader page: how the gateway serves it, and a real browser using it (Playwright from
npm driving Debian's Chromium against the session stack; the steps are in reader.test.mjs)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from lectern_dev.stack import Stack
from tests.ui.conftest import CHROMIUM, UI_DIR

BROWSER_RUN_TIMEOUT_S = 300


def test_page_is_served_through_the_gateway_with_a_strict_policy(gateway: httpx.Client):
    page = gateway.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ):
        assert directive in csp
    assert page.headers["cache-control"] == "no-cache"
    assert page.headers["x-content-type-options"] == "nosniff"
    # Everything the page loads is its own: no CDN, nothing fetched from the internet.
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert "/static/app.js" in assets and "/static/style.css" in assets
    assert all(a.startswith(("/static/", "data:", "#")) for a in assets), assets


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/static/app.js", "javascript"),
        ("/static/sse.js", "javascript"),
        ("/static/style.css", "text/css"),
    ],
)
def test_static_files_are_served_with_their_types(gateway: httpx.Client, path: str, kind: str):
    response = gateway.get(path)
    assert response.status_code == 200
    assert kind in response.headers["content-type"]
    assert "content-security-policy" in response.headers


@pytest.mark.parametrize(
    "path",
    ["/static/nope.js", "/static/../pages.py", "/static/%2e%2e/pages.py", "/static/..%2fapp.py"],
)
def test_only_the_page_files_are_served(gateway: httpx.Client, path: str):
    response = gateway.get(path)
    assert response.status_code == 404
    assert "create_app" not in response.text and "APIRouter" not in response.text


def run_browser(stack: Stack, out_dir: Path) -> tuple[int, dict, str]:
    proc = subprocess.run(
        [
            "node",
            str(UI_DIR / "reader.test.mjs"),
            stack.gateway_url,
            stack.config.url("fake_gemini"),
            str(out_dir),
        ],
        cwd=UI_DIR,
        capture_output=True,
        text=True,
        timeout=BROWSER_RUN_TIMEOUT_S,
        env={**os.environ, "CHROMIUM_PATH": str(CHROMIUM)},
    )
    return proc.returncode, report_of(proc.stdout), proc.stderr[-3000:]


def report_of(stdout: str) -> dict:
    """The JSON report a browser script prints as its last line ({} when there is none)."""
    lines = stdout.strip().splitlines()
    try:
        return json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        return {}


def describe_failures(report: dict, stderr: str) -> str:
    failed = [c for c in report.get("checks", []) if not c["ok"]]
    parts = [f"{c['name']}:\n{c.get('error', '')}" for c in failed]
    if report.get("console"):
        parts.append(f"console: {report['console']}")
    if report.get("screenshots"):
        parts.append(f"screenshots: {report['screenshots']}")
    return "\n\n".join(parts) or f"no report; stderr:\n{stderr}"


def test_a_reader_uses_the_page_in_a_browser(
    stack: Stack, gateway: httpx.Client, book: dict, playwright_dir: Path, tmp_path: Path
):
    code, report, stderr = run_browser(stack, tmp_path)
    assert code == 0, describe_failures(report, stderr)
    names = [c["name"] for c in report["checks"]]
    assert len(names) >= 20 and all(c["ok"] for c in report["checks"]), names
    for shot in ("reader-1280-answer.png", "reader-1280-summary.png", "reader-390.png"):
        assert (tmp_path / shot).stat().st_size > 10_000, shot
    print("reader page timings (ms):", report["facts"]["browser_timings_ms"])

    # The guest's conversation was claimed at sign-up (which spends the guest token) and then
    # deleted by the reader.
    guest = report["facts"]["guest_conversation"]
    path = f"/api/chat/conversations/{guest['id']}"
    spent = gateway.get(path, headers={"x-guest-token": guest["guestToken"]})
    assert spent.status_code == 401
    assert spent.json()["error"]["code"] == "invalid_guest_token"
    assert gateway.get(path).status_code == 404
