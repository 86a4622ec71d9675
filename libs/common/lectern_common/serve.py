"""Run a service with uvicorn: `python -m lectern_<service>`. Workers come from
`<SERVICE>_WEB_CONCURRENCY` (e.g. CHAT_WEB_CONCURRENCY), else WEB_CONCURRENCY, else 1, so each
service can be scaled on its own."""

from __future__ import annotations

import os

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


def serve(factory: str, *, host: str, port: int) -> None:
    service = factory.split(".", 1)[0].removeprefix("lectern_")
    uvicorn.run(
        factory,
        factory=True,
        host=host,
        port=port,
        workers=worker_count(service),
        log_config=None,
        access_log=False,
        proxy_headers=False,
        # Past the drain (lectern_common.draining), which ends every answer stream by then.
        timeout_graceful_shutdown=int(shutdown_grace_s() + 10),
        lifespan="on",
    )
