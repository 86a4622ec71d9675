"""A second gateway replica on a running stack: another Traefik process with the same routes
and the same Redis for its rate limits, on ports of its own."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from lectern_dev.harness.replicas import wait_for_http
from lectern_dev.stack import Process, Stack, free_port


@dataclass
class Gateway:
    url: str
    process: Process

    def stop(self) -> None:
        self.process.stop()


def start_gateway(stack: Stack, name: str, env: dict[str, str] | None = None) -> Gateway:
    """Start Traefik as `name` with the stack's gateway environment plus `env` (e.g.
    `CHAT_URLS`: the replicas it balances over); returned once it routes."""
    web, admin = free_port(), free_port()
    traefik = shutil.which("traefik", path=str(Path(sys.executable).parent)) or "traefik"
    process = Process(
        name,
        [traefik, f"--configFile={stack.traefik_static(name, web, admin)}"],
        env={**stack.gateway_env(), **(env or {})},
        log=stack.logs / f"{name}.log",
    )
    url = f"http://127.0.0.1:{web}"
    try:
        health = f"/api/{stack.config.services[0]}/health" if stack.config.services else "/"
        wait_for_http(url + health, process, timeout_s=30)
    except BaseException:
        process.stop()
        raise
    return Gateway(url, process)
