"""Extra replicas of a service on a running stack's stores (PostgreSQL, Redis), each a process
of its own on a free port, as a second instance behind the gateway would be."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass

import httpx

from lectern_dev.harness.polling import wait_until
from lectern_dev.harness.services import InternalAuth
from lectern_dev.stack import Process, Stack, free_port


@dataclass
class Replica:
    """A replica's address, the credential another service would call it with, and its
    process."""

    url: str
    auth: InternalAuth
    process: Process

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=self.auth, timeout=timeout)

    def stop(self) -> None:
        self.process.stop()


def answers_200(url: str) -> bool:
    """Whether `url` answers 200 now (a refused or broken connection is a no)."""
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url, timeout=1.0).status_code == 200
    return False


def wait_for_http(url: str, process: Process | None = None, timeout_s: float = 60.0) -> None:
    """Wait until `url` answers 200, failing at once with its log if `process` exits."""

    def up() -> bool:
        if process is not None and not process.alive():
            raise RuntimeError(f"{process.name} exited during start-up:\n{process.tail()}")
        return answers_200(url)

    wait_until(
        up,
        timeout_s,
        interval_s=0.1,
        message=lambda: f"{url} did not answer 200" + (f":\n{process.tail()}" if process else ""),
    )


def start_replica(
    stack: Stack, service: str, name: str, env: dict[str, str] | None = None
) -> Replica:
    """Start `lectern_<service>` as `name` with the stack's environment plus `env`; returns it
    once its /ready answers (stopped again if it never does)."""
    port = free_port()
    process = Process(
        name,
        [sys.executable, "-m", f"lectern_{service}"],
        env={**stack.env_of(service), f"{service.upper()}_PORT": str(port), **(env or {})},
        log=stack.logs / f"{name}.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/ready", process)
    except BaseException:
        process.stop()
        raise
    return Replica(url, InternalAuth(stack), process)
