"""The status page at the gateway (/status, its figures at /status/api): every part on one
screen, aggregates only, served by profile or (when profile is down) by summary, a restart
visible as a new start time, and in a real browser a stopped service's card red within 5 s."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from lectern_dev.harness.chat import ask
from lectern_dev.harness.polling import wait_until
from lectern_dev.harness.readers import new_reader
from lectern_dev.harness.services import gateway_client
from lectern_dev.stack import Stack

HERE = Path(__file__).parent
UI_DIR = HERE.parent / "ui"
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
PARTS = {"chat", "retrieval", "profile", "summary", "auth", "gateway"}


def figures(stack: Stack) -> dict:
    response = httpx.get(f"{stack.gateway_url}/status/api", timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def states(stack: Stack) -> dict[str, str]:
    return {part["name"]: part["state"] for part in figures(stack)["parts"]}


def part(stack: Stack, name: str) -> dict:
    return next(p for p in figures(stack)["parts"] if p["name"] == name)


def test_every_part_and_store_on_one_screen_with_no_secret_or_reader(obs_stack: Stack):
    with gateway_client(obs_stack) as gateway:
        reader = new_reader(gateway)
        answer = ask(gateway, {"message": "What is a ROS 2 node?"}, headers=reader.headers)
        assert answer.last.event == "done"
    wait_until(lambda: set(states(obs_stack).items()) >= {(p, "up") for p in PARTS}, 20)
    chat = wait_until(lambda: (c := part(obs_stack, "chat")).get("requests_per_s") and c, 20)
    assert chat["uptime_s"] >= 0 and chat["started_at"] > 0
    assert {"p95_ms", "error_share", "model_calls_per_min", "gauges"} <= set(chat)
    assert "lectern_chat_open_streams" in chat["gauges"]
    body = figures(obs_stack)
    stores = {s["name"]: s for s in body["stores"]}
    assert {"postgres", "redis"} <= set(stores) and all(s["up"] for s in stores.values())
    text = json.dumps(body)
    secrets = [v for v in obs_stack.secrets.values() if v] + [reader.user_id, reader.email]
    assert not [s for s in secrets if s in text]
    page = httpx.get(f"{obs_stack.gateway_url}/status", timeout=5)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_the_page_stays_up_while_profile_is_down_and_shows_its_restart(obs_stack: Stack):
    before = wait_until(lambda: part(obs_stack, "profile").get("started_at"), 20)
    obs_stack.processes["profile"].stop()
    stopped = time.monotonic()
    try:
        # Not one request fails meanwhile: the gateway retries until its health check moves
        # the page to summary (Traefik's failover).
        codes = []
        while time.monotonic() - stopped < 3:
            codes.append(httpx.get(f"{obs_stack.gateway_url}/status/api", timeout=5).status_code)
            time.sleep(0.25)
        assert set(codes) == {200}, codes
        # Summary shows profile down; summary itself is up but not ready (it calls profile).
        wait_until(lambda: states(obs_stack)["profile"] == "down", 10, interval_s=0.2)
        print(f"profile shown down {time.monotonic() - stopped:.1f} s after it stopped")
        # Summary's own row turns not_ready on the poll after its /ready first fails to reach
        # profile (each part is polled on its own, so one poll may show profile down first).
        wait_until(lambda: states(obs_stack)["summary"] == "not_ready", 10, interval_s=0.2)
        assert states(obs_stack)["retrieval"] == "up"
    finally:
        obs_stack.restart_service("profile")
    after = wait_until(
        lambda: (p := part(obs_stack, "profile"))["state"] == "up" and p.get("started_at"), 30
    )
    assert after > before


def run_browser(stack: Stack, out_dir: Path, stop: str) -> dict:
    proc = subprocess.Popen(
        ["node", str(HERE / "status.test.mjs"), stack.gateway_url, str(out_dir)],
        cwd=HERE,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CHROMIUM_PATH": str(CHROMIUM)},
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        first = proc.stdout.readline()
        if json.loads(first or "{}").get("ready"):
            stack.processes[stop].stop()
            proc.stdin.write(f"stopped {stop}\n")
            proc.stdin.flush()
            last = proc.stdout.readline()
        else:
            last = first
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    report = json.loads(last) if last.strip() else {"error": proc.stderr.read()[-3000:]}
    report["returncode"] = proc.returncode
    return report


def test_the_page_in_a_browser_turns_a_stopped_service_red_within_5_s(
    obs_stack: Stack, tmp_path_factory: pytest.TempPathFactory
):
    if not CHROMIUM.exists() or shutil.which("node") is None:
        pytest.fail("Chromium and node are needed: `make browser` installs them", pytrace=False)
    if not (UI_DIR / "node_modules" / "playwright-core").exists():
        pytest.fail("playwright-core missing: `make browser` (npm ci in tests/ui)", pytrace=False)
    out_dir = tmp_path_factory.mktemp("status-screenshots")
    try:
        report = run_browser(obs_stack, out_dir, "chat")
    finally:
        obs_stack.restart_service("chat")
    print(f"status page screenshots: {out_dir}")
    assert report["returncode"] == 0, report
    assert all(c["ok"] for c in report["checks"]) and len(report["checks"]) >= 7, report
    print(f"chat's card turned red {report['facts']['red_after_ms']} ms after it stopped")
    for name in ("status-1280-healthy", "status-390-healthy", "status-1280-chat-down"):
        assert (out_dir / f"{name}.png").stat().st_size > 10_000, name
