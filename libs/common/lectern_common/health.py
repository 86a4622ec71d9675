"""/health (alive), /ready (each dependency checked, with latency), /accepting (not draining:
the gateway's health check of each replica) and /metrics (Prometheus,
after the same checks: lectern_dependency_up and lectern_dependency_check_seconds).

/ready is public (the gateway routes /api/<service>/ready): its body names each dependency,
whether it is up and how long the check took, never why it failed (exception texts carry
socket paths, host names and addresses); that goes to the service's log.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

from lectern_common import metrics
from lectern_common.responses import FastJSONResponse

log = structlog.get_logger()

Check = Callable[[], Awaitable[object]]
READY_TIMEOUT_S = 2.0


async def _run_check(service: str, name: str, check: Check) -> dict:
    start = time.perf_counter()
    try:
        await asyncio.wait_for(check(), READY_TIMEOUT_S)
        ok = True
    except Exception as exc:  # a failing dependency is reported, not raised
        ok = False
        log.warning(
            "ready.check_failed",
            dependency=name,
            error=type(exc).__name__,
            detail=str(exc)[:500],
        )
    elapsed = time.perf_counter() - start
    metrics.DEPENDENCY_UP.labels(service, name).set(1 if ok else 0)
    metrics.DEPENDENCY_LATENCY.labels(service, name).set(elapsed)
    if not ok and name == "redis":
        metrics.redis_failed()
    return {"ok": ok, "status": "up" if ok else "down", "latency_ms": round(elapsed * 1000, 1)}


def _forget_dead_workers(folder: str) -> None:
    """A worker that died (and was replaced) no longer counts in the live gauges."""
    for path in Path(folder).glob("gauge_live*_*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(int(pid), folder)
        except PermissionError:
            pass


def _registry() -> CollectorRegistry:
    # Several workers per container: each writes its samples to PROMETHEUS_MULTIPROC_DIR.
    if folder := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _forget_dead_workers(folder)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return DEFAULT_REGISTRY


def _draining(request: Request) -> bool:
    drain = getattr(request.app.state, "drain", None)
    return drain is not None and bool(drain.draining)


def health_router(*, service: str, checks: Callable[[Request], dict[str, Check]]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health")
    async def health() -> dict:
        return {"status": "ok", "service": service}

    @router.get("/accepting")
    async def accepting(request: Request) -> FastJSONResponse:
        """Whether this replica takes new requests: what the gateway's health check asks of
        each replica it balances over. No dependency is checked: they are shared by every
        replica, so a store that is down must not take all of them out (their own answers
        say what is degraded); only a draining replica is taken out."""
        if _draining(request):
            return FastJSONResponse({"status": "draining", "service": service}, status_code=503)
        return FastJSONResponse({"status": "accepting", "service": service})

    @router.get("/ready")
    async def ready(request: Request) -> FastJSONResponse:
        if _draining(request):  # shutting down: take this one out
            return FastJSONResponse({"status": "draining", "service": service}, status_code=503)
        named = checks(request)
        results = await asyncio.gather(*(_run_check(service, n, c) for n, c in named.items()))
        deps = dict(zip(named, results, strict=True))
        ok = all(r["ok"] for r in results)
        return FastJSONResponse(
            {"status": "ready" if ok else "not_ready", "service": service, "dependencies": deps},
            status_code=200 if ok else 503,
        )

    @router.get("/metrics", include_in_schema=False)
    async def metrics_view(request: Request) -> Response:
        # The readiness checks first, so each scrape carries fresh lectern_dependency_up.
        await asyncio.gather(*(_run_check(service, n, c) for n, c in checks(request).items()))
        return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)

    return router
