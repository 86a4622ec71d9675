"""Fixtures of the observability tests: a stack of their own (they stop services), with the fake
Gemini and the sample book, and a real Prometheus (Debian's package) scraping it every second."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from lectern_dev import REPO_ROOT
from lectern_dev.harness.books import ingest_book
from lectern_dev.harness.polling import wait_until
from lectern_dev.stack import Process, Stack, free_port

OBS = REPO_ROOT / "deploy" / "observability"
JOBS = ("chat", "retrieval", "profile", "summary")


@pytest.fixture(scope="package")
def obs_stack(make_stack: Callable[..., Stack]) -> Stack:
    stack = make_stack("obs", fake_gemini=True, extra_env={"EMBEDDINGS_PROVIDER": "local"})
    ingest_book(stack)
    return stack


def prometheus_config(stack: Stack, rules: Path) -> dict:
    """deploy/observability/prometheus.yml with the test stack's addresses, scraped every 1 s."""
    config = yaml.safe_load((OBS / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(rules)]
    ports = {**{job: getattr(stack.config.ports, job) for job in JOBS}}
    ports["gateway"] = stack.config.ports.admin
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[job['job_name']]}"]}]
    return config


@pytest.fixture(scope="package")
def prometheus(obs_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "prometheus not found: `make browser` installs Debian's (apt-get install prometheus)",
            pytrace=False,
        )
    folder = tmp_path_factory.mktemp("prometheus")
    rules = folder / "alerts.yml"
    shutil.copy(OBS / "alerts.yml", rules)
    config = folder / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(obs_stack, rules)))
    port = free_port()
    proc = Process(
        "prometheus",
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        env={"PATH": "/usr/bin:/bin"},
        log=folder / "prometheus.log",
        cwd=folder,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if not proc.alive():
            raise RuntimeError(f"prometheus exited:\n{proc.tail()}")
        try:
            return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, 30, interval_s=0.2, message=lambda: proc.tail())
    yield url
    proc.stop()


def query(prometheus: str, expr: str) -> dict:
    """The `data` of an instant query; raises when Prometheus refuses the expression."""
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (expr, body)
    return body["data"]
