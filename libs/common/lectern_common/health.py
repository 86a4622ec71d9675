"""/health (alive), /ready (each dependency checked, with latency) and /metrics (Prometheus)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import ORJSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

Check = Callable[[], Awaitable[object]]
READY_TIMEOUT_S = 2.0


async def _run_check(check: Check) -> dict:
    start = time.perf_counter()
    try:
        await asyncio.wait_for(check(), READY_TIMEOUT_S)
        ok, error = True, None
    except Exception as exc:  # a failing dependency is reported, not raised
        ok, error = False, f"{type(exc).__name__}: {exc}"[:200]
    result: dict[str, object] = {
        "ok": ok,
        "latency_ms": round((time.perf_counter() - start) * 1000, 1),
    }
    if error:
        result["error"] = error
    return result


def _registry() -> CollectorRegistry:
    # Several workers per container: each writes its samples to PROMETHEUS_MULTIPROC_DIR.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return DEFAULT_REGISTRY


def health_router(*, service: str, checks: Callable[[Request], dict[str, Check]]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health")
    async def health() -> dict:
        return {"status": "ok", "service": service}

    @router.get("/ready")
    async def ready(request: Request) -> ORJSONResponse:
        named = checks(request)
        results = await asyncio.gather(*(_run_check(c) for c in named.values()))
        deps = dict(zip(named, results, strict=True))
        ok = all(r["ok"] for r in results)
        return ORJSONResponse(
            {"status": "ready" if ok else "not_ready", "service": service, "dependencies": deps},
            status_code=200 if ok else 503,
        )

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)

    return router
