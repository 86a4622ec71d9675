"""`lectern run` (what `make run` starts) as a user runs it: up, reachable through the gateway,
Ctrl-C stops every process it started, and a second run keeps the data of the first."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from lectern_dev import REPO_ROOT
from lectern_dev.harness.polling import wait_until
from lectern_dev.ingest import bearer, post_files
from lectern_dev.stack import load_secrets


def processes_of(data_dir: Path) -> list[int]:
    """Pids whose environment or command line names this run's data folder."""
    marker = str(data_dir).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            seen = (entry / "environ").read_bytes() + (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in seen:
            found.append(int(entry.name))
    return found


class LocalRun:
    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lectern_dev.cli",
                "run",
                "--random-ports",
                "--data-dir",
                str(data_dir),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output = ""
        deadline = time.monotonic() + 120
        while "Press Ctrl-C" not in self.output:
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                pytest.fail(f"lectern run exited:\n{self.output}")
            self.output += line
            assert time.monotonic() < deadline, self.output
        self.gateway = re.search(r"reader page\s+(http://\S+)/", self.output).group(1)
        self.admin = re.search(r"gateway admin\s+(http://127\.0\.0\.1:\d+)/", self.output).group(1)

    def interrupt(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        rest, _ = self.proc.communicate(timeout=60)
        return self.output + rest


@pytest.fixture
def run_env(database_url: str | None, redis_prefix: str) -> dict[str, str]:
    env = dict(os.environ)
    if database_url:
        env["DATABASE_URL"] = database_url
    env["REDIS_PREFIX"] = redis_prefix + "run:"
    return env


def test_lectern_run_starts_everything_and_ctrl_c_stops_it(tmp_path: Path, run_env: dict):
    data_dir = tmp_path / "lectern"
    run = LocalRun(data_dir, run_env)
    try:
        with httpx.Client(base_url=run.gateway, timeout=10) as client:
            for service in ("chat", "retrieval", "profile", "summary"):
                assert client.get(f"/api/{service}/health").status_code == 200, service
            assert (
                client.post("/api/search", json={"query": "ros 2 nodes", "top_k": 3}).status_code
                != 404
            )
            assert client.get("/").status_code == 200
        assert httpx.get(f"{run.admin}/ping").text == "OK"
        assert processes_of(data_dir), "the stack's processes should be found while it runs"
    finally:
        output = run.interrupt()
    assert run.proc.returncode == 0, output
    assert "lectern: stopped." in output
    # A process may take a moment to be gone from /proc once it exited.
    wait_until(
        lambda: processes_of(data_dir) == [],
        10,
        message=lambda: f"still running: {processes_of(data_dir)}",
    )


def test_second_run_keeps_the_data_of_the_first_on_embedded_stores(tmp_path: Path):
    """No DATABASE_URL/REDIS_URL: the run starts embedded PostgreSQL and Redis in its data
    folder, and what was ingested in one run is still searchable in the next."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    data_dir = tmp_path / "lectern"
    note = b"# Persistence note\n\nThe quokkabot remembers every wrench it ever touched.\n"
    first = LocalRun(data_dir, env)
    try:
        response = post_files(
            first.gateway,
            source="persist",
            files=[("note.md", note)],
            headers=bearer(load_secrets(data_dir)["ADMIN_TOKEN"]),
            timeout_s=60,
        )
        assert response.status_code == 200, response.text
    finally:
        assert first.interrupt() and first.proc.returncode == 0
    assert processes_of(data_dir) == []

    second = LocalRun(data_dir, env)
    try:
        response = httpx.post(
            f"{second.gateway}/api/search",
            timeout=10,
            json={"query": "quokkabot wrench", "top_k": 3},
        )
        assert response.status_code == 200, response.text
        top = response.json()["results"][0]
        assert top["source_path"] == "note.md" and "quokkabot" in top["text"]
    finally:
        assert second.interrupt() and second.proc.returncode == 0
