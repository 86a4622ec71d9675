"""The stores failing under a steady load of 20 readers, on a PostgreSQL cluster and a Redis of
this test's own (never the shared ones): PostgreSQL restarted with `pg_ctl restart -m fast`
and `-m immediate`, Redis stopped for 10 s then started again on the same port. No request
hangs, every answer seen `done` is stored whole, nothing written before the fault is lost, and
the stack serves normally again within RECOVERY_WITHIN_S of the store being back, with no
service restarted by hand.

While Redis is down the gateway's rate limits (buckets in that Redis, GATEWAY_REDIS_*) are
probed on a route that does not itself need Redis (`GET /api/profile/options`): the figures
line shows what the gateway answered there (`options_during_outage`). Measured: a bare 500 for
every rate-limited route, this one included, until Redis is back: Traefik's Redis rate
limiter fails closed, and 3.7.15 has no setting to let requests through (the backoff proposed
in traefik/traefik#12042 is not in it). Not fixed here; the figures show what readers get."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lectern_dev.harness.books import ingest_book
from lectern_dev.harness.polling import wait_until
from lectern_dev.harness.services import gateway_client, routed
from lectern_dev.harness.steady import SteadyLoad, check
from lectern_dev.stack import Ports, Stack, StackConfig, free_port
from tests.faults.conftest import FIGURES_NAME, OPEN_LIMITS, assert_still_there, write_data

PG_BIN = next(Path("/usr/lib/postgresql").glob("*/bin"), Path("/usr/lib/postgresql/15/bin"))
READERS = 20
TIMEOUT_S = 60.0
REDIS_DOWN_S = 10.0
# From the store being back to the first answer asked after it ending `done`, and then normal
# service (the pools find their connections broken and open new ones).
RECOVERY_WITHIN_S = 20.0
# From the store being back to where every reader must be served normally (measured recovery:
# 1.4-2.1 s; the bound above is what is asserted).
NORMAL_AFTER_S = 8.0


def accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def as_postgres(args: list) -> list:
    """PostgreSQL's tools refuse to run as root: then they run as the `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@dataclass
class Postgres:
    """A PostgreSQL cluster in a temporary folder of its own (owned by whoever runs it), on a
    free port, trust auth."""

    data: Path
    port: int

    @classmethod
    def create(cls) -> Postgres:
        folder = Path(tempfile.mkdtemp(prefix="lectern-faults-pg-"))
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        pg = cls(folder / "pgdata", free_port())
        subprocess.run(
            as_postgres(
                [PG_BIN / "initdb", "-D", pg.data, "-U", "postgres", "--auth=trust", "-E", "UTF8"]
            ),
            check=True,
            capture_output=True,
        )
        (pg.data / "postgresql.auto.conf").write_text(  # the file initdb made, its owner kept
            f"port = {pg.port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{folder}'\nmax_connections = 200\nfsync = off\n"
        )
        pg.ctl("start", "-w")
        return pg

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def ctl(self, *args: str) -> None:
        subprocess.run(
            as_postgres(
                [PG_BIN / "pg_ctl", "-D", self.data, "-l", self.data.parent / "pg.log", *args]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )


class Redis:
    """A Redis on a free port, nothing saved: stopped and started again on the same port."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "redis-server"
        self.proc = subprocess.Popen(
            [
                *(binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.folder)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: accepts(self.port), 15, message="redis did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(15)
            self.proc = None


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Postgres, Redis]]:
    pg = Postgres.create()
    redis = Redis(tmp_path_factory.mktemp("redis"))
    try:
        yield pg, redis
    finally:
        redis.stop()
        pg.ctl("stop", "-m", "immediate")
        shutil.rmtree(pg.data.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def store_stack(stores: tuple[Postgres, Redis], tmp_path_factory) -> Iterator[Stack]:
    pg, redis = stores
    config = StackConfig(
        data_dir=tmp_path_factory.mktemp("stores-stack"),
        ports=Ports.random(),
        database_url=pg.url,
        redis_url=redis.url,
        redis_prefix="lectern-faults:",
        fake_gemini=True,
        extra_env={**OPEN_LIMITS, "EMBEDDINGS_PROVIDER": "local", "DATABASE_POOL_IDLE_S": "3"},
    )
    stack = Stack(config).start()
    try:
        routed(stack)
        ingest_book(stack)
        with httpx.Client(base_url=stack.config.url("fake_gemini")) as fake:
            fake.post("/_fake/config", json={"token_interval_ms": 100, "words_per_chunk": 3})
        yield stack
    finally:
        stack.stop()


class Prober:
    """GET a route every 0.3 s from another thread; the statuses it got, by when."""

    def __init__(self, url: str) -> None:
        self.url, self.seen = url, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.wait(0.3):
                try:
                    status: int | str = client.get(self.url).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                self.seen.append((time.monotonic(), status))

    def between(self, start: float, end: float) -> dict[str, int]:
        self._stop.set()
        self._thread.join(10)
        return dict(Counter(str(s) for t, s in self.seen if start <= t < end))


def restart_postgres(pg: Postgres, mode: str) -> None:
    pg.ctl("restart", "-w", "-m", mode)


@pytest.mark.parametrize("fault", ["pg-restart-fast", "pg-restart-immediate", "redis-down-10s"])
def test_a_store_restart_loses_nothing_and_the_stack_recovers(
    store_stack: Stack, stores: tuple[Postgres, Redis], fault: str
):
    pg, redis = stores
    with gateway_client(store_stack, timeout=TIMEOUT_S) as gateway:
        written = write_data(gateway)
        prober = Prober(f"{store_stack.gateway_url}/api/profile/options")
        load = SteadyLoad(store_stack.gateway_url, readers=READERS, timeout_s=TIMEOUT_S).start()
        try:
            warm = time.monotonic()
            wait_until(lambda: load.done_since(warm) >= READERS // 2, 60, interval_s=0.2)
            fault_start = time.monotonic()
            if fault == "redis-down-10s":
                redis.stop()
                time.sleep(REDIS_DOWN_S)
                redis.start()
            else:
                restart_postgres(pg, fault.rsplit("-", 1)[1])
            fault_end = time.monotonic()
            normal_from = fault_end + NORMAL_AFTER_S
            wait_until(lambda: load.ended_since(normal_from) >= READERS, 90, interval_s=0.2)
        finally:
            records = load.stop()
        outage = prober.between(fault_start, fault_end)
        found = check(
            store_stack.gateway_url,
            records,
            case=fault,
            fault_end=fault_end,
            timeout_s=TIMEOUT_S,
            recovery_within_s=RECOVERY_WITHIN_S,
            figures_file=store_stack.config.data_dir / FIGURES_NAME,
            normal_from=normal_from,
            extra={
                "fault_s": fault_end - fault_start,
                "options_during_outage": ",".join(f"{k}:{v}" for k, v in sorted(outage.items())),
            },
        )
        # An answer the reader saw to its end is stored, the restart notwithstanding: chat tries
        # the final UPDATE again on a lost connection (the restart takes well under its 5 s).
        assert "error:storage_failed" not in found.errors, found.line()
        if fault.startswith("pg-"):
            # Refused while the database was away: retryable 503s in the envelope, no 500.
            assert not [k for k in found.errors if k.startswith("http:500")], found.line()
        assert_still_there(gateway, written)
