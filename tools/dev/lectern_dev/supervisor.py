"""`lectern run`'s supervisor: a service, the auth server, the gateway (or the fake Gemini) that
exits, or stops answering its health check, is started again, with a backoff that doubles for a
process that keeps failing. Each decision is one line on stderr and in logs/supervisor.log.

Call `tick()` about twice a second from the run's main loop; it never blocks for long (each
health check has a short timeout) and leaves the stores (PostgreSQL, Redis) alone.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import dataclass

import httpx

from lectern_dev.stack import SERVICES, Stack

# Health checks a process may miss in a row before it is taken for hung and killed.
MISSES_ALLOWED = 3
# First wait before a restart, doubled per failure in a row up to BACKOFF_MAX_S; a process that
# stayed healthy for HEALTHY_RESET_S starts again from the first.
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
HEALTHY_RESET_S = 30.0
# A (re)started process is not checked for hanging until it answered once or this long passed.
START_GRACE_S = 60.0
# Long enough that a healthy service on a loaded machine is not taken for hung (3 misses: about
# 10 s without an answer).
CHECK_TIMEOUT_S = 3.0


@dataclass
class Watched:
    name: str
    started_at: float
    answered: bool = False
    misses: int = 0
    failures: int = 0  # restarts in a row, for the backoff
    restart_at: float | None = None
    restarts: int = 0


class Supervisor:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        now = time.monotonic()
        self.watched = {
            name: Watched(name, started_at=now)
            for name in stack.processes
            if name in (*SERVICES, "auth", "gateway", "fake_gemini")
        }
        self.client = httpx.Client(timeout=CHECK_TIMEOUT_S)
        self.log_path = stack.logs / "supervisor.log"

    def health_url(self, name: str) -> str:
        c = self.stack.config
        if name == "auth":
            return f"{c.url('auth')}/api/auth/ok"
        if name == "gateway":
            return f"http://127.0.0.1:{c.ports.admin}/ping"
        return f"{c.url(name)}/health"

    def log(self, event: str, name: str, **fields: object) -> None:
        line = {"ts": time.time(), "event": event, "process": name, **fields}
        print(f"lectern: {name} {event} {json.dumps(fields)}", file=sys.stderr, flush=True)
        with contextlib.suppress(OSError), self.log_path.open("a") as out:
            out.write(json.dumps(line) + "\n")

    def healthy(self, name: str) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return self.client.get(self.health_url(name)).status_code == 200
        return False

    def tick(self) -> None:
        now = time.monotonic()
        for w in self.watched.values():
            if w.restart_at is not None:
                if now >= w.restart_at:
                    self._restart(w)
                continue
            proc = self.stack.processes.get(w.name)
            if proc is None or not proc.alive():
                code = proc.popen.returncode if proc is not None else None
                self._schedule(w, "exited", returncode=code)
                continue
            if self.healthy(w.name):
                w.answered, w.misses = True, 0
                if w.failures and now - w.started_at > HEALTHY_RESET_S:
                    w.failures = 0
            elif w.answered or now - w.started_at > START_GRACE_S:
                w.misses += 1
                if w.misses >= MISSES_ALLOWED:
                    proc.kill()
                    self._schedule(w, "unhealthy", missed_checks=w.misses)

    def _schedule(self, w: Watched, why: str, **fields: object) -> None:
        delay = min(BACKOFF_FIRST_S * 2**w.failures, BACKOFF_MAX_S)
        w.failures += 1
        w.restart_at = time.monotonic() + delay
        self.log(why, w.name, restart_in_s=delay, **fields)

    def _restart(self, w: Watched) -> None:
        old = self.stack.processes.pop(w.name, None)
        if old is not None:
            old.stop(timeout=5)
        try:
            self.stack.start_process(w.name)
        except Exception as exc:
            self._schedule(w, "restart_failed", error=type(exc).__name__)
            return
        w.restarts += 1
        w.started_at, w.answered, w.misses, w.restart_at = time.monotonic(), False, 0, None
        self.log("restarted", w.name, restarts=w.restarts)

    def close(self) -> None:
        self.client.close()
