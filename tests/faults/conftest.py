"""The fault suite's fixtures: every test here is marked `faults` (`make test-faults` runs them
alone); the readers' budget at the gateway opened wide (20 readers all come from 127.0.0.1);
`lectern run` started as a developer starts it; the data a reader wrote before a fault (profile,
conversation, feedback, cached summary) and the check that it is all still there after."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lectern_dev import REPO_ROOT
from lectern_dev.harness.chat import ask, settled_answer
from lectern_dev.harness.polling import wait_until
from lectern_dev.harness.readers import Reader, new_reader
from lectern_dev.harness.steady import REPORTED

FAULTS_DIR = Path(__file__).parent
# The gateway's budgets: the steady load is 20 readers from one address, asking in a loop.
OPEN_LIMITS = {
    "RATE_STREAM_PER_MIN": "100000",
    "RATE_STREAM_BURST": "10000",
    "RATE_API_PER_S": "10000",
    "RATE_API_BURST": "10000",
    "RATE_AUTH_PER_MIN": "6000",
    "RATE_AUTH_BURST": "1000",
    "RATE_SIGN_PER_MIN": "6000",
    "RATE_SIGN_BURST": "1000",
}
# Traefik's rate-limit keys carry no prefix: the fault stacks keep their buckets in a Redis
# database of their own so the load never spends another test's budget on the shared server.
GATEWAY_REDIS_DB = "13"
CHAPTER = "book--02-ros2-nodes"
PROFILE = {"ros2_level": "intermediate", "answer_depth": "brief", "goals": "Walk a humanoid."}
FIGURES_NAME = "fault-figures.jsonl"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if FAULTS_DIR in Path(item.fspath).parents:
            item.add_marker(pytest.mark.faults)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Each case's figures line at the end of the run, where CI's log shows them (a passing
    test's own output is captured)."""
    if REPORTED:
        terminalreporter.section("fault figures")
        for line in REPORTED:
            terminalreporter.write_line(line)


class Run:
    """`lectern run --fake-gemini` on random ports, its output in a file (a pipe nobody reads
    would fill up and block it)."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.out_path = data_dir / "run.out"
        self._out = self.out_path.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lectern_dev.cli",
                "run",
                "--random-ports",
                "--fake-gemini",
                "--data-dir",
                str(data_dir),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_until(self._up, 150, interval_s=0.2, message=lambda: self.output)
        except BaseException:
            self.interrupt()
            raise
        self.gateway = re.search(r"reader page\s+(http://\S+)/", self.output).group(1)

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"lectern run exited:\n{self.output}")
        return "Press Ctrl-C" in self.output

    @property
    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def fake_url(self) -> str:
        """The fake Gemini's address (its port is on its command line)."""
        from tests.test_local_run import pid_of

        args = Path(f"/proc/{pid_of(self.data_dir, 'lectern_dev.fake_gemini')}/cmdline")
        parts = args.read_bytes().split(b"\0")
        return f"http://127.0.0.1:{int(parts[parts.index(b'--port') + 1])}"

    def interrupt(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._out.close()
        return self.output


@dataclass
class Written:
    """What one signed-in reader wrote before a fault, as the service answered it."""

    reader: Reader
    profile: dict
    conversation_id: str
    message_id: str
    answer: str
    summary: dict


def write_data(gateway: httpx.Client) -> Written:
    """A reader signs up, saves a profile, asks a question, rates the answer; a chapter's
    summary is generated (and so cached)."""
    reader = new_reader(gateway)
    saved = gateway.put("/api/profile/me", headers=reader.headers, json=PROFILE)
    assert saved.status_code == 200, saved.text
    # Asked again for a while: the previous case's fault may still be wearing off.
    answer = wait_until(
        lambda: (
            (
                a := ask(gateway, {"message": "What is a ROS 2 topic?"}, headers=reader.headers)
            ).status
            == 200
            and a.last.event == "done"
            and a
        ),
        60,
        interval_s=1.0,
        message="no answer before the fault",
    )
    stored = settled_answer(gateway, answer, reader.headers)
    rated = gateway.post(
        f"/api/chat/messages/{answer.meta['message_id']}/feedback",
        headers=reader.headers,
        json={"rating": "up", "comment": "before the fault"},
    )
    assert rated.status_code == 200, rated.text
    summary = gateway.get(f"/api/summary/chapters/{CHAPTER}", timeout=60)
    assert summary.status_code == 200, summary.text
    return Written(
        reader=reader,
        profile=saved.json(),
        conversation_id=answer.meta["conversation_id"],
        message_id=answer.meta["message_id"],
        answer=stored["content"],
        summary=summary.json(),
    )


def still_there(gateway: httpx.Client, written: Written) -> list[str]:
    """What of `written` is lost or changed (an empty list when nothing is)."""
    lost = []
    headers = written.reader.headers
    profile = gateway.get("/api/profile/me", headers=headers)
    if profile.status_code != 200 or profile.json() != written.profile:
        lost.append(f"profile: {profile.status_code} {profile.text[:200]}")
    conversation = gateway.get(
        f"/api/chat/conversations/{written.conversation_id}", headers=headers
    )
    if conversation.status_code != 200:
        lost.append(f"conversation: {conversation.status_code}")
    else:
        reply = next(
            (m for m in conversation.json()["messages"] if m["id"] == written.message_id), None
        )
        if reply is None or reply["content"] != written.answer or reply["status"] != "complete":
            lost.append(f"answer: {reply}")
        elif (reply["feedback"], reply["feedback_comment"]) != ("up", "before the fault"):
            lost.append(f"feedback: {reply['feedback']!r} {reply['feedback_comment']!r}")
    summary = gateway.get(f"/api/summary/chapters/{CHAPTER}", timeout=60)
    body = summary.json() if summary.status_code == 200 else {}
    if not body.get("cached") or (body.get("summary"), body.get("generated_at")) != (
        written.summary["summary"],
        written.summary["generated_at"],
    ):
        lost.append(f"cached summary: {summary.status_code} {summary.text[:200]}")
    return lost


def assert_still_there(gateway: httpx.Client, written: Written, within_s: float = 30.0) -> None:
    """Everything written before the fault reads back the same (asked again for a while: a
    restarted service may still be coming back)."""
    lost: list[str] = []

    def intact() -> bool:
        nonlocal lost
        with contextlib.suppress(httpx.HTTPError):
            lost = still_there(gateway, written)
            return not lost
        lost = ["no answer"]
        return False

    wait_until(intact, within_s, interval_s=1.0, message=lambda: f"lost: {lost}")


def elapsed_since(start: float) -> float:
    return time.monotonic() - start
