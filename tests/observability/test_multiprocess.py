"""Several workers of one service: their metrics add up on /metrics (prometheus_client's
multiprocess mode), and a previous run's figures are not carried into the next one."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from lectern_dev.harness.replicas import Replica, wait_for_http
from lectern_dev.harness.services import InternalAuth
from lectern_dev.stack import Process, Stack, free_port

REQUESTS = 60
HEALTH = {"service": "profile", "method": "GET", "route": "/health", "status": "200"}


def two_workers(stack: Stack, name: str, env: dict[str, str]) -> Replica:
    """Profile with two workers on the stack's stores (spawned workers start slowly on a busy
    machine: each imports everything again)."""
    port = free_port()
    process = Process(
        name,
        [sys.executable, "-m", "lectern_profile"],
        env={
            **stack.env_of("profile"),
            "PROFILE_PORT": str(port),
            "PROFILE_WEB_CONCURRENCY": "2",
            **env,
        },
        log=stack.logs / f"{name}.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/ready", process, timeout_s=180)
    except BaseException:
        process.stop()
        raise
    return Replica(url, InternalAuth(stack), process)


def health_count(families) -> float:
    return sum(
        sample.value
        for family in families
        if family.name == "lectern_http_requests"
        for sample in family.samples
        if sample.name == "lectern_http_requests_total" and sample.labels == HEALTH
    )


def scraped(url: str) -> list:
    return list(text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text))


def hit_health(url: str) -> None:
    for _ in range(REQUESTS):  # a new connection each time: either worker may take it
        assert httpx.get(f"{url}/health", timeout=10).status_code == 200


def stale_counter(folder: Path) -> None:
    """A file a previous run of the service left: 1,000 /health requests of a dead worker."""
    folder.mkdir(parents=True, exist_ok=True)
    names, values = list(HEALTH), list(HEALTH.values())
    key = mmap_key("lectern_http_requests_total", "lectern_http_requests_total", names, values, "")
    stale = MmapedDict(str(folder / "counter_4242.db"))
    stale.write_value(key, 1000.0, 0.0)
    stale.close()


def test_two_workers_counts_add_up_and_a_previous_run_is_forgotten(
    obs_stack: Stack, tmp_path: Path
):
    folder = tmp_path / "metrics"
    stale_counter(folder)
    replica = two_workers(
        obs_stack, "profile-two-workers", {"PROMETHEUS_MULTIPROC_DIR": str(folder)}
    )
    try:
        hit_health(replica.url)
        assert health_count(scraped(replica.url)) == REQUESTS
        assert not (folder / "counter_4242.db").exists()
        # Each worker wrote its own share, and both served some of the requests (the parent
        # process has a file of zeros: it imports the metrics but serves nothing).
        shares = [
            health_count(MultiProcessCollector.merge([str(path)]))
            for path in sorted(folder.glob("counter_*.db"))
        ]
        served = [share for share in shares if share]
        assert len(served) == 2 and sum(served) == REQUESTS, shares
        # Gauges add up over the live workers: two pools of the configured size.
        pool_max = [
            s.value
            for f in scraped(replica.url)
            if f.name == "lectern_db_pool_connections"
            for s in f.samples
            if s.labels.get("state") == "max"
        ]
        assert pool_max and pool_max[0] == 2 * 10
    finally:
        replica.stop()


def test_two_workers_without_a_configured_folder_still_add_up(obs_stack: Stack):
    replica = two_workers(obs_stack, "profile-two-workers-tmp", {})
    try:
        hit_health(replica.url)
        assert health_count(scraped(replica.url)) == REQUESTS
    finally:
        replica.stop()
