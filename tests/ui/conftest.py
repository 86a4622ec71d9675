"""Fixtures of the reader-page tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from lectern_dev.harness.books import ingest_book
from lectern_dev.stack import Stack

UI_DIR = Path(__file__).parent
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))


@pytest.fixture(scope="module")
def book(stack: Stack) -> dict:
    """The sample book, ingested (idempotent when another area already did)."""
    return ingest_book(stack)


@pytest.fixture(scope="module")
def playwright_dir() -> Path:
    """The folder with playwright-core installed (npm ci from the lock file when missing)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}. `make test` installs Debian's browser "
            "(`sudo apt-get install -y chromium`), or point CHROMIUM_PATH at a Chromium binary.",
            pytrace=False,
        )
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail(
            "node and npm are needed for the browser test (Debian: apt-get install nodejs npm).",
            pytrace=False,
        )
    if not (UI_DIR / "node_modules" / "playwright-core" / "package.json").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=UI_DIR,
            check=True,
            timeout=300,
            stdout=subprocess.DEVNULL,
        )
    return UI_DIR
