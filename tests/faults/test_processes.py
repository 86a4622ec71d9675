"""Each Python service and the auth server SIGKILLed mid-stream under a steady load of 20
readers, on a stack started by `lectern run`: the supervisor starts it again, no request hangs,
every answer seen `done` is stored whole, nothing written before the kill is lost, and answers
end `done` again within RECOVERY_WITHIN_S of the kill without a hand restart."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lectern_dev import REPO_ROOT
from lectern_dev.harness.polling import wait_until
from lectern_dev.harness.readers import sign_in
from lectern_dev.harness.replicas import answers_200
from lectern_dev.harness.steady import SteadyLoad, check
from tests.faults.conftest import (
    FIGURES_NAME,
    OPEN_LIMITS,
    Run,
    assert_still_there,
    write_data,
)
from tests.test_local_run import pid_of, supervisor_events

READERS = 20
TIMEOUT_S = 60.0
# From the kill to the first answer asked after it that ends `done`: the supervisor sees the
# exit within a tick and waits 0.5 s, the new process starts (~5 s of CPU on this loaded
# machine) and Traefik, which marked the service down, takes it back at its next health check
# (every 10 s, gateway/dynamic.yml). Measured 0.4-11 s at a load average of ~10 on 2 cores.
RECOVERY_WITHIN_S = 30.0
# From the service answering through the gateway again to serving every reader normally.
SETTLE_S = 5.0
# A killed chat's open-stream slots lapse CHAT_HEARTBEAT_TTL_S (10 s) after its last beat:
# until then guests behind one address may be refused `too_many_streams` (retryable).
SLOTS_LAPSE_S = 11.0
# Each answer streams for about 1.5 s (9 pieces, 150 ms apart), so a kill lands mid-stream.
SLOW_STREAM = {"token_interval_ms": 150, "words_per_chunk": 3}
COMMANDS = {
    "chat": "lectern_chat",
    "retrieval": "lectern_retrieval",
    "profile": "lectern_profile",
    "summary": "lectern_summary",
    "auth": str(REPO_ROOT / "services" / "auth" / "server.mjs"),
}


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    """`lectern run` on its embedded PostgreSQL and Redis, as `make run` without DATABASE_URL:
    the shared server of this machine runs out of connections under the other test runs, and
    a restarted service that cannot connect exits again."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    # A folder of its own, readable on the way down: the embedded PostgreSQL runs as another
    # user when the tests run as root, and pytest's base folder (shared by every pytest run of
    # this machine's users) is private to root.
    folder = Path(tempfile.mkdtemp(prefix="lectern-faults-run-"))
    folder.chmod(0o755)
    started = Run(folder / "lectern", {**env, **OPEN_LIMITS})
    try:
        with httpx.Client(base_url=started.gateway, timeout=10) as client:
            # The sample book is ingested in the background once the run is up.
            wait_until(
                lambda: (
                    client.post("/api/search", json={"query": "ros 2 nodes"}).json().get("results")
                ),
                120,
                interval_s=1.0,
                message="the sample book was never ingested",
            )
        yield started
    finally:
        output = started.interrupt()
        shutil.rmtree(folder, ignore_errors=True)
    assert "lectern: stopped." in output


def all_routed(run: Run) -> bool:
    paths = [f"/api/{s}/health" for s in ("chat", "retrieval", "profile", "summary")]
    return all(answers_200(run.gateway + p) for p in [*paths, "/api/auth/ok"])


@pytest.mark.parametrize("victim", ["retrieval", "profile", "summary", "auth", "chat"])
def test_a_killed_process_is_restarted_and_the_load_recovers(run: Run, victim: str):
    wait_until(lambda: all_routed(run), 60, interval_s=0.5, message="the stack is not all up")
    with httpx.Client(base_url=run.fake_url(), timeout=10) as fake:
        fake.post("/_fake/config", json=SLOW_STREAM)
    with httpx.Client(base_url=run.gateway, timeout=30) as gateway:
        written = write_data(gateway)
        restarts_before = len(supervisor_events(run.data_dir, victim, "restarted"))
        load = SteadyLoad(run.gateway, readers=READERS, timeout_s=TIMEOUT_S).start()
        try:
            warm = time.monotonic()
            wait_until(lambda: load.done_since(warm) >= READERS // 2, 60, interval_s=0.2)
            time.sleep(0.7)  # well into the next answers
            os.kill(pid_of(run.data_dir, COMMANDS[victim]), signal.SIGKILL)
            killed = time.monotonic()
            health = "/api/auth/ok" if victim == "auth" else f"/api/{victim}/health"
            wait_until(
                lambda: answers_200(run.gateway + health),
                RECOVERY_WITHIN_S + 30,
                interval_s=0.1,
                message=f"{victim} not back through the gateway",
            )
            back_s = time.monotonic() - killed
            # Some more load once the service is back (and Traefik routes to it): it serves
            # normally again.
            normal_from = max(time.monotonic() + SETTLE_S, killed + SLOTS_LAPSE_S)
            wait_until(lambda: load.ended_since(normal_from) >= READERS, 90, interval_s=0.2)
        finally:
            records = load.stop()
        restarted = supervisor_events(run.data_dir, victim, "restarted")
        check(
            run.gateway,
            records,
            case=f"sigkill-{victim}",
            fault_end=killed,
            timeout_s=TIMEOUT_S,
            recovery_within_s=RECOVERY_WITHIN_S,
            figures_file=run.data_dir / FIGURES_NAME,
            extra={"service_back_s": back_s},
            normal_from=normal_from,
        )
        assert len(restarted) == restarts_before + 1, restarted
        assert_still_there(gateway, written)
        if victim == "auth":
            # The restarted auth server signs the same reader in again.
            signed = sign_in(gateway, written.reader.email, written.reader.password)
            assert signed.status_code == 200, signed.text
