"""Run a service with uvicorn: `python -m lectern_<service>` (workers from WEB_CONCURRENCY)."""

from __future__ import annotations

import os

import uvicorn


def serve(factory: str, *, host: str, port: int) -> None:
    workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
    uvicorn.run(factory, factory=True, host=host, port=port, workers=workers,
                log_config=None, access_log=False, proxy_headers=False,
                timeout_graceful_shutdown=10, lifespan="on")
