"""Run a service with uvicorn: `python -m lectern_<service>`. Workers come from
`<SERVICE>_WEB_CONCURRENCY` (e.g. CHAT_WEB_CONCURRENCY), else WEB_CONCURRENCY, else 1, so each
service can be scaled on its own. With several workers their metrics go to
PROMETHEUS_MULTIPROC_DIR (a temporary folder when it is not set), emptied at each start so the
counts of a previous run are not added to this one's."""

from __future__ import annotations

import atexit
import importlib
import os
import shutil
import tempfile
from pathlib import Path

import uvicorn


def worker_count(service: str) -> int:
    value = os.environ.get(f"{service.upper()}_WEB_CONCURRENCY") or os.environ.get(
        "WEB_CONCURRENCY", "1"
    )
    return max(1, int(value))


def shutdown_grace_s() -> float:
    return float(os.environ.get("SHUTDOWN_GRACE_S", "20")) + float(
        os.environ.get("DRAIN_NOTICE_S", "1")
    )


def prepare_metrics_dir(service: str, workers: int) -> Path | None:
    """The multiprocess metrics folder, empty; None with one worker and none configured."""
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not configured:
        # Set but empty would make prometheus_client write its files into the working folder.
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if workers == 1:
            return None
        configured = tempfile.mkdtemp(prefix=f"lectern-{service}-metrics-")
        atexit.register(shutil.rmtree, configured, ignore_errors=True)
        # Read by prometheus_client when each worker imports it.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = configured
    folder = Path(configured)
    if folder.exists():
        for entry in folder.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# How long an idle keep-alive connection stays open: longer than its clients keep theirs
# (Traefik's servers transport, 90 s by default; the internal client's aiohttp pool, 15 s), so
# the client always closes first. With uvicorn's 5 s a proxy could send a request on a
# connection the service was closing that instant: a 502 that no retry covers for a POST (3 in
# ~2,000 answer streams of the burst bench).
KEEP_ALIVE_S = 120


def serve(factory: str, *, settings: str) -> None:
    """Run `factory` ("pkg.app:create_app") on the host and port of `settings`
    ("pkg.settings:Class"). The settings are imported only after the metrics folder is ready:
    they import prometheus_client, which decides on import where this process's samples go, and
    emptying the folder under a process that already holds its files would lose them."""
    service = factory.split(".", 1)[0].removeprefix("lectern_")
    workers = worker_count(service)
    prepare_metrics_dir(service, workers)
    module, _, name = settings.partition(":")
    config = getattr(importlib.import_module(module), name)()
    host, port = config.host, config.port
    uvicorn.run(
        factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        # Past the drain (lectern_common.draining), which ends every answer stream by then.
        timeout_graceful_shutdown=int(shutdown_grace_s() + 10),
        timeout_keep_alive=KEEP_ALIVE_S,
        lifespan="on",
    )
