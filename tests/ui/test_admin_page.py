"""The authors' insights page in a real browser (Playwright from npm driving Debian's Chromium
against the session stack; the steps are in admin.test.mjs): seeded here through the gateway
with an uncovered question asked twice and a down-rated answer with a comment."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import httpx

from lectern_dev.harness.chat import ask
from lectern_dev.stack import Stack
from tests.ui.conftest import CHROMIUM, UI_DIR
from tests.ui.test_reader_page import describe_failures, report_of


def test_an_author_reads_the_insights_in_a_browser(
    stack: Stack, gateway: httpx.Client, book: dict, playwright_dir: Path, tmp_path: Path
):
    tag = " ".join(f"ui{secrets.token_hex(3)}" for _ in range(8))
    question = f"How do I flash micro-ROS onto an ESP32 {tag} board over UART?"
    for wording in (question, question.lower().rstrip("?")):
        assert ask(gateway, {"message": wording}).one("sources")["coverage"]["verdict"] == (
            "not_covered"
        )
    answer = ask(gateway, {"message": "What does an IMU measure on a walking humanoid?"})
    comment = f"Too vague about the IMU topic {secrets.token_hex(3)}"
    rated = gateway.post(
        f"/api/chat/messages/{answer.meta['message_id']}/feedback",
        json={"rating": "down", "comment": comment},
        headers=answer.guest,
    )
    assert rated.status_code == 200

    proc = subprocess.run(
        [
            "node",
            str(UI_DIR / "admin.test.mjs"),
            stack.gateway_url,
            stack.secrets["ADMIN_TOKEN"],
            tag,
            comment,
            str(tmp_path),
        ],
        cwd=UI_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CHROMIUM_PATH": str(CHROMIUM)},
    )
    report = report_of(proc.stdout)
    assert proc.returncode == 0, describe_failures(report, proc.stderr[-3000:])
    assert len(report["checks"]) == 6 and all(c["ok"] for c in report["checks"])
    assert (tmp_path / "admin-insights.png").stat().st_size > 10_000
