"""What a reader sees of the citation checks and of an extractive fallback answer, in a real
browser (Playwright from npm driving Debian's Chromium through the session stack's gateway;
the steps are in trust.test.mjs). Screenshots: trust-citation-checks.png, trust-fallback.png
in the test's temporary folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from lectern_dev.stack import Stack

UI_DIR = Path(__file__).parent
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))


@pytest.fixture(scope="module")
def browser_ready() -> None:
    if not CHROMIUM.exists() or shutil.which("node") is None:
        pytest.fail(f"Chromium ({CHROMIUM}) and node are needed (make browser)", pytrace=False)
    if not (UI_DIR / "node_modules" / "playwright-core" / "package.json").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=UI_DIR,
            check=True,
            timeout=300,
            stdout=subprocess.DEVNULL,
        )


def test_the_page_marks_citation_checks_and_the_fallback_label(
    stack: Stack, book: dict, browser_ready: None, tmp_path: Path
):
    proc = subprocess.run(
        [
            "node",
            str(UI_DIR / "trust.test.mjs"),
            stack.gateway_url,
            stack.config.url("fake_gemini"),
            str(tmp_path),
        ],
        cwd=UI_DIR,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "CHROMIUM_PATH": str(CHROMIUM)},
    )
    lines = proc.stdout.strip().splitlines()
    report = json.loads(lines[-1]) if lines else {}
    failed = [c for c in report.get("checks", []) if not c["ok"]]
    assert proc.returncode == 0, (failed, report.get("console"), proc.stderr[-2000:])
    assert len(report["checks"]) == 5 and not failed
    for shot in ("trust-citation-checks.png", "trust-fallback.png"):
        assert (tmp_path / shot).stat().st_size > 10_000, shot
    print("screenshots:", report["screenshots"])
