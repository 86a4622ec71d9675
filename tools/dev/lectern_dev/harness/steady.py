"""A steady load through the gateway for the fault suite: N guest readers asking in a loop, each
request with a client timeout, every request recorded (when, how it ended, which answer); then
the checks every fault case makes (no hang, every `done` stored whole with its sources) and one
line of figures per case.

    load = SteadyLoad(gateway_url, readers=20).start()
    ... cause the fault; fault_end = time.monotonic() ...
    records = load.stop()
    figures = check(gateway_url, records, case="kill-chat", fault_end=fault_end, timeout_s=60)
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from lectern_dev.harness.chat import messages
from lectern_dev.harness.sse import parse

QUESTIONS = (
    "How do ROS 2 nodes talk to each other?",
    "What does an IMU measure on a humanoid robot?",
    "How do I bridge Gazebo topics to ROS 2?",
    "Why does a walking robot need a balance controller?",
)
# Extra seconds a request may take past its client timeout before it counts as a hang (the
# reader thread only looks at the clock between events).
HANG_SLACK_S = 2.0
# Every figures line of this process, for a summary at the end of the test run.
REPORTED: list[str] = []
# Once a fault is over, at least this share of the requests made must end `done`.
NORMAL_DONE_SHARE = 0.9


@dataclass
class Record:
    """One request as its reader saw it. `last` is how it ended: `done`, `error:<code>` (the
    stream's error event), `http:<status>:<code>` (refused before the stream), `cut` (the
    connection ended without a last event), `connect` (no connection) or `hang` (the client
    timeout fired: nothing ended it in time)."""

    reader: int
    start: float  # time.monotonic()
    end: float = 0.0
    status: int | None = None
    last: str = ""
    message_id: str | None = None
    conversation_id: str | None = None
    guest_token: str | None = None
    text: str = ""
    sources: list | None = None
    fallback: str | None = None
    retryable: bool | None = None  # what the error event (or envelope) said


@dataclass
class Figures:
    case: str
    requests: int
    done: int
    errors: dict[str, int]
    recovery_s: float | None
    fallbacks: dict[str, int] = field(default_factory=dict)
    longest_s: float = 0.0
    extra: dict[str, float | str] = field(default_factory=dict)  # a case's own figures

    def line(self) -> str:
        recovery = "none" if self.recovery_s is None else f"{self.recovery_s:.1f}"
        return (
            f"fault={self.case} requests={self.requests} done={self.done} "
            f"errors={json.dumps(self.errors, sort_keys=True)} recovery_s={recovery} "
            f"fallbacks={json.dumps(self.fallbacks, sort_keys=True)} "
            f"longest_s={self.longest_s:.1f}"
            + "".join(
                f" {k}={v:.1f}" if isinstance(v, float) else f" {k}={v}"
                for k, v in self.extra.items()
            )
        )


class SteadyLoad:
    """`readers` threads, each asking one question after another through the gateway as one
    guest (the token of its first answer is sent back with the next), a new conversation per
    question, until stop()."""

    def __init__(
        self,
        gateway_url: str,
        *,
        readers: int = 20,
        timeout_s: float = 60.0,
        pause_s: float = 0.2,
        error_pause_s: float = 1.0,
        body: dict | None = None,
    ) -> None:
        self.gateway_url = gateway_url
        self.readers, self.timeout_s, self.pause_s = readers, timeout_s, pause_s
        self.error_pause_s = error_pause_s
        self.body = body or {}
        self.records: list[Record] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> SteadyLoad:
        for n in range(self.readers):
            thread = threading.Thread(target=self._reader, args=(n,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> list[Record]:
        """Let each reader finish the request it is in (bounded by its timeout), then return
        every record, oldest first."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(self.timeout_s + 10)
        with self._lock:
            return sorted(self.records, key=lambda r: r.start)

    def done_since(self, since: float) -> int:
        """How many answers asked at or after `since` ended `done` so far."""
        with self._lock:
            return sum(1 for r in self.records if r.last == "done" and r.start >= since)

    def ended_since(self, since: float) -> int:
        """How many requests made at or after `since` ended so far, however they ended."""
        with self._lock:
            return sum(1 for r in self.records if r.start >= since)

    def _reader(self, n: int) -> None:
        guest: str | None = None
        with httpx.Client(base_url=self.gateway_url, timeout=self.timeout_s) as client:
            i = 0
            while not self._stopping.is_set():
                question = QUESTIONS[(n + i) % len(QUESTIONS)]
                record = self.ask(client, n, {"message": question, **self.body}, guest)
                i += 1
                if record.guest_token:
                    guest = record.guest_token
                if record.last == "http:401:invalid_guest_token":
                    guest = None
                with self._lock:
                    self.records.append(record)
                # A failed answer is asked again a second later, as the reader page does: at
                # once, 20 readers would be a retry storm that starves the restarting process.
                self._stopping.wait(self.pause_s if record.last == "done" else self.error_pause_s)

    def ask(self, client: httpx.Client, n: int, body: dict, guest: str | None) -> Record:
        record = Record(reader=n, start=time.monotonic(), guest_token=guest)
        headers = {"x-guest-token": guest} if guest else {}
        deadline = record.start + self.timeout_s
        try:
            with client.stream("POST", "/api/chat/stream", json=body, headers=headers) as resp:
                record.status = resp.status_code
                if resp.status_code != 200:
                    resp.read()
                    record.last = f"http:{resp.status_code}:{error_code(resp)}"
                    record.retryable = retryable(resp)
                    return record
                record.last = "cut"
                text: list[str] = []
                for event in parse(resp.iter_lines()):
                    self._saw(record, event.event, event.data, text)
                    if event.event in ("done", "error") or time.monotonic() > deadline:
                        break
                record.text = "".join(text)
                if record.last == "cut" and time.monotonic() > deadline:
                    record.last = "hang"
        except httpx.TimeoutException:
            record.last = "hang"
        except httpx.ConnectError:
            record.last = "connect"
        except (httpx.TransportError, json.JSONDecodeError):
            record.last = "cut"
        finally:
            record.end = time.monotonic()
        return record

    @staticmethod
    def _saw(record: Record, name: str, data: dict, text: list[str]) -> None:
        if name == "meta":
            record.message_id = data.get("message_id")
            record.conversation_id = data.get("conversation_id")
            record.guest_token = data.get("guest_token") or record.guest_token
        elif name == "sources":
            record.sources = data.get("sources")
        elif name == "token":
            text.append(data.get("text", ""))
        elif name == "done":
            record.last = "done"
            record.fallback = data.get("fallback")
        elif name == "error":
            record.last = f"error:{data.get('code')}"
            record.retryable = data.get("retryable")


def error_code(response: httpx.Response) -> str:
    """The code of Lectern's JSON error envelope, or `-` (Traefik's bare pages have none)."""
    with contextlib.suppress(ValueError, AttributeError, KeyError, TypeError):
        body = response.json()
        return str(body.get("error", {}).get("code") or body.get("code") or "-")
    return "-"


def retryable(response: httpx.Response) -> bool | None:
    """The envelope's `retryable`, else whether the status says to come back (429, 5xx)."""
    with contextlib.suppress(ValueError, AttributeError, KeyError, TypeError):
        flag = response.json()["error"].get("retryable")
        if flag is not None:
            return bool(flag)
    return response.status_code == 429 or response.status_code >= 500


def unstored(gateway_url: str, records: Iterable[Record], workers: int = 4) -> list[str]:
    """Every answer that ended `done` but is not stored `complete` with the streamed text and
    sources: one line per such answer (an empty list when all are)."""
    finished = [r for r in records if r.last == "done"]

    def problem(client: httpx.Client, r: Record) -> str | None:
        headers = {"x-guest-token": r.guest_token or ""}
        for attempt in range(3):  # the stack may still be settling right after a fault
            try:
                stored = next(
                    (
                        m
                        for m in messages(client, r.conversation_id, headers)
                        if m["id"] == r.message_id
                    ),
                    None,
                )
                break
            except (httpx.HTTPError, AssertionError):
                if attempt == 2:
                    raise
                time.sleep(1)
        if stored is None:
            return f"{r.message_id}: not stored"
        if stored["status"] != "complete":
            return f"{r.message_id}: stored {stored['status']}"
        if stored["content"] != r.text:
            return (
                f"{r.message_id}: stored text differs ({len(stored['content'])} != {len(r.text)})"
            )
        if not r.sources or stored.get("sources") != r.sources:
            return f"{r.message_id}: sources missing or different"
        return None

    with (
        httpx.Client(base_url=gateway_url, timeout=30) as client,
        ThreadPoolExecutor(workers) as pool,
    ):
        found = pool.map(lambda r: problem(client, r), finished)
        return [p for p in found if p]


def answered(record: Record) -> bool:
    return record.last == "done"


def figures(
    records: list[Record],
    case: str,
    *,
    fault_end: float | None,
    recovered: Callable[[Record], bool] = answered,
) -> Figures:
    errors = Counter(r.last for r in records if r.last != "done")
    fallbacks = Counter(r.fallback for r in records if r.last == "done" and r.fallback)
    recovery = None
    if fault_end is not None:
        after = [r.end for r in records if recovered(r) and r.start >= fault_end]
        recovery = min(after) - fault_end if after else None
    return Figures(
        case=case,
        requests=len(records),
        done=sum(1 for r in records if r.last == "done"),
        errors=dict(errors),
        recovery_s=recovery,
        fallbacks=dict(fallbacks),
        longest_s=max((r.end - r.start for r in records), default=0.0),
    )


def report(found: Figures, figures_file: Path | None) -> None:
    """Print the case's line (`pytest -s` shows it) and append it, with the figures as JSON, to
    `figures_file` under the stack's data folder and to $LECTERN_FAULT_FIGURES when set (one
    JSON object a line), so a CI run's figures can be collected after its stacks are gone."""
    print(found.line(), flush=True)
    REPORTED.append(found.line())
    line = json.dumps({**asdict(found), "line": found.line(), "at": time.time()}) + "\n"
    extra = os.environ.get("LECTERN_FAULT_FIGURES")
    for path in [figures_file, Path(extra) if extra else None]:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as out:
                out.write(line)


def check(
    gateway_url: str,
    records: list[Record],
    *,
    case: str,
    fault_end: float | None,
    timeout_s: float,
    recovery_within_s: float | None,
    figures_file: Path | None = None,
    extra: dict[str, float | str] | None = None,
    normal_from: float | None = None,
    recovered: Callable[[Record], bool] = answered,
) -> Figures:
    """The checks of every fault case, after its figures are reported (a failing case still
    shows what it measured): no request ran past its timeout, every `done` is stored whole with
    its sources, and (when `recovery_within_s` is given) an answer asked after the fault ended
    `done` (or `recovered`, e.g. from the model, not the fallback) within that many seconds of
    it, and from `normal_from` on the stack serves normally
    (at least NORMAL_DONE_SHARE of the requests made end `done`)."""
    found = figures(records, case, fault_end=fault_end, recovered=recovered)
    found.extra.update(extra or {})
    later = [r for r in records if normal_from is not None and r.start >= normal_from]
    if later:
        found.extra["normal_done"] = f"{sum(r.last == 'done' for r in later)}/{len(later)}"
    report(found, figures_file)
    hung = [r for r in records if r.last == "hang" or r.end - r.start > timeout_s + HANG_SLACK_S]
    assert not hung, f"{len(hung)} requests hung past {timeout_s} s: {hung[:3]}"
    assert found.done > 0, f"no answer ended done: {found.line()}"
    problems = unstored(gateway_url, records)
    assert not problems, f"{len(problems)} answers seen done are not stored whole: {problems[:5]}"
    if recovery_within_s is not None:
        assert found.recovery_s is not None, f"never served again after the fault: {found.line()}"
        assert found.recovery_s <= recovery_within_s, (
            f"recovery took {found.recovery_s:.1f} s (bound {recovery_within_s} s): {found.line()}"
        )
    if normal_from is not None:
        assert later, f"no request made after the stack was back: {found.line()}"
        share = sum(r.last == "done" for r in later) / len(later)
        assert share >= NORMAL_DONE_SHARE, f"not serving normally again: {found.line()}"
    return found
