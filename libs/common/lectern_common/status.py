"""The status page (`/status`, its figures at `/status/api`): every service, the auth server,
the gateway and each store on one screen. Mounted by more than one service (profile and
summary; the gateway fails over from one to the other), so it stays up when any one is down.

A poller reads each part's /health, /ready and /metrics over the internal network with short
timeouts (every second while someone looks, every ten otherwise) and keeps a few minutes of
samples in memory; rates, error shares, p95s and hit rates are computed from the differences
between samples. It shows aggregates only: no secret, no reader, no request body; "last
errors" are a status or an error kind, a route template and a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse
from prometheus_client.parser import text_string_to_metric_families
from pydantic import Field
from pydantic_settings import BaseSettings

from lectern_common.responses import FastJSONResponse

PAGE_DIR = Path(__file__).parent / "status_page"
SERVICES = ("chat", "retrieval", "profile", "summary")
TIMEOUT_S = 1.0
FAST_S, SLOW_S = 1.0, 10.0
# How long after the last view the poller keeps its fast pace.
VIEWED_FOR_S = 60.0
HISTORY_S = 300.0
WINDOW_S = 60.0
PROBES = frozenset({"/health", "/ready", "/accepting", "/metrics", "unmatched"})
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


class StatusSettings(BaseSettings):
    """Where the parts are (the same variables the services and the gateway already use)."""

    chat_url: str = Field("http://127.0.0.1:8101", validation_alias="CHAT_URL")
    retrieval_url: str = Field("http://127.0.0.1:8102", validation_alias="RETRIEVAL_URL")
    profile_url: str = Field("http://127.0.0.1:8103", validation_alias="PROFILE_URL")
    summary_url: str = Field("http://127.0.0.1:8104", validation_alias="SUMMARY_URL")
    auth_url: str = Field("http://127.0.0.1:8105", validation_alias="AUTH_URL")
    gateway_admin_url: str = Field("http://127.0.0.1:8081", validation_alias="GATEWAY_ADMIN_URL")

    def service_url(self, name: str) -> str:
        return str(getattr(self, f"{name}_url")).rstrip("/")


# ---- reading /metrics ------------------------------------------------------------------------
@dataclass
class Sample:
    """The figures of one /metrics read that the page uses (counters are cumulative)."""

    at: float
    requests: dict[tuple[str, str], float] = field(default_factory=dict)  # (route, status)
    buckets: dict[float, float] = field(default_factory=dict)  # le -> count, all routes
    model_calls: float = 0.0
    model_failures: dict[str, float] = field(default_factory=dict)  # kind -> count
    cache: dict[str, float] = field(default_factory=dict)  # hit / miss
    gauges: dict[str, float] = field(default_factory=dict)
    started: float | None = None


def parse_metrics(text: str, at: float) -> Sample:
    sample = Sample(at=at)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            name, labels, value = s.name, s.labels, s.value
            route = labels.get("route", "")
            if name == "lectern_http_requests_total" and route not in PROBES:
                key = (f"{labels.get('method', '')} {route}", labels.get("status", ""))
                sample.requests[key] = sample.requests.get(key, 0.0) + value
            elif name == "lectern_http_request_duration_seconds_bucket" and route not in PROBES:
                le = float(labels["le"])
                sample.buckets[le] = sample.buckets.get(le, 0.0) + value
            elif name == "lectern_model_calls_total":
                sample.model_calls += value
            elif name == "lectern_model_failures_total":
                kind = labels.get("kind", "")
                sample.model_failures[kind] = sample.model_failures.get(kind, 0.0) + value
            elif name == "lectern_summary_cache_lookups_total":
                result = labels.get("result", "")
                sample.cache[result] = sample.cache.get(result, 0.0) + value
            elif name in ("lectern_chat_open_streams", "lectern_chat_answers_in_progress"):
                sample.gauges[name] = sample.gauges.get(name, 0.0) + value
            elif name == "lectern_db_pool_connections":
                state = f"pool_{labels.get('state', '')}"
                sample.gauges[state] = sample.gauges.get(state, 0.0) + value
            elif name == "lectern_db_pool_waiting":
                sample.gauges["pool_waiting"] = sample.gauges.get("pool_waiting", 0.0) + value
            elif name == "lectern_start_time_seconds":
                sample.started = max(sample.started or 0.0, value)
    return sample


def _delta(new: dict, old: dict) -> dict:
    # A counter that went down is a restarted process: its new value is the increase.
    return {k: (v - old.get(k, 0.0) if v >= old.get(k, 0.0) else v) for k, v in new.items()}


def p95(buckets: dict[float, float]) -> float | None:
    """The 95th percentile of a cumulative histogram's increase (linear within a bucket)."""
    ordered = sorted(buckets.items())
    total = ordered[-1][1] if ordered else 0.0
    if total <= 0:
        return None
    rank, lower, below = 0.95 * total, 0.0, 0.0
    for le, count in ordered:
        if count >= rank:
            if math.isinf(le):
                return lower
            share = (rank - below) / (count - below) if count > below else 1.0
            return lower + (le - lower) * share
        lower, below = le, count
    return lower


def window_figures(samples: deque[Sample]) -> dict:
    """Rates and shares over the last WINDOW_S of samples (None until there are two)."""
    if len(samples) < 2:
        return {}
    new = samples[-1]
    old = next((s for s in samples if new.at - s.at <= WINDOW_S), samples[0])
    if old is new:
        old = samples[-2]
    span = max(new.at - old.at, 1e-6)
    requests = _delta(new.requests, old.requests)
    total = sum(requests.values())
    errors = sum(v for (_, status), v in requests.items() if status.startswith("5"))
    cache = _delta(new.cache, old.cache)
    lookups = sum(cache.values())
    failures = sum(_delta(new.model_failures, old.model_failures).values())
    calls = new.model_calls - old.model_calls if new.model_calls >= old.model_calls else 0.0
    return {
        "window_s": round(span, 1),
        "requests_per_s": round(total / span, 3),
        "error_share": round(errors / total, 4) if total else 0.0,
        "p95_ms": _ms(p95(_delta(new.buckets, old.buckets))),
        "model_calls_per_min": round(calls * 60 / span, 2),
        "model_failures_per_min": round(failures * 60 / span, 2),
        "cache_hit_rate": round(cache.get("hit", 0.0) / lookups, 3) if lookups else None,
    }


async def _get(client: httpx.AsyncClient, url: str) -> httpx.Response | Exception:
    try:
        return await client.get(url)
    except Exception as exc:  # a failed poll is shown, not raised
        return exc


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


# ---- polling ---------------------------------------------------------------------------------
@dataclass
class Part:
    name: str
    kind: str  # service, auth, gateway
    state: str = "unknown"  # up, not_ready, down
    checked_at: float | None = None
    health_ms: float | None = None
    dependencies: dict[str, dict] = field(default_factory=dict)
    samples: deque[Sample] = field(default_factory=deque)


@dataclass
class StatusBoard:
    settings: StatusSettings
    parts: dict[str, Part] = field(default_factory=dict)
    last_errors: deque[dict] = field(default_factory=lambda: deque(maxlen=20))
    viewed_at: float = 0.0
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        for name in SERVICES:
            self.parts[name] = Part(name, "service")
        self.parts["auth"] = Part("auth", "auth")
        self.parts["gateway"] = Part("gateway", "gateway")

    def viewed(self) -> None:
        """A view: poll fast for a while (at once if it was slow)."""
        slow = time.monotonic() - self.viewed_at > VIEWED_FOR_S
        self.viewed_at = time.monotonic()
        if slow:
            self.wake.set()

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=20, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=TIMEOUT_S, limits=limits) as client:
            while True:
                await self.poll(client)
                fast = time.monotonic() - self.viewed_at <= VIEWED_FOR_S
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), FAST_S if fast else SLOW_S)

    async def poll(self, client: httpx.AsyncClient) -> None:
        await asyncio.gather(*(self._poll_part(client, part) for part in self.parts.values()))

    async def _poll_part(self, client: httpx.AsyncClient, part: Part) -> None:
        s = self.settings
        if part.kind == "service":
            await self._poll_service(client, part, s.service_url(part.name))
        elif part.kind == "auth":
            await self._probe(client, part, f"{s.auth_url.rstrip('/')}/api/auth/ok")
        else:
            await self._probe(client, part, f"{s.gateway_admin_url.rstrip('/')}/ping")

    async def _probe(self, client: httpx.AsyncClient, part: Part, url: str) -> bool:
        started = time.perf_counter()
        try:
            ok = (await client.get(url)).status_code == 200
        except httpx.HTTPError:
            ok = False
        part.health_ms = _ms(time.perf_counter() - started) if ok else None
        part.state = "up" if ok else "down"
        part.checked_at = time.time()
        return ok

    async def _poll_service(self, client: httpx.AsyncClient, part: Part, base: str) -> None:
        if not await self._probe(client, part, f"{base}/health"):
            part.dependencies = {}
            return
        # One after the other: both run the service's dependency checks, and the second then
        # reuses the PostgreSQL connection the first released instead of opening another (every
        # service of every replica is polled every 10 s even when nobody looks).
        ready, metrics = [
            await _get(client, f"{base}/ready"),
            await _get(client, f"{base}/metrics"),
        ]
        if isinstance(ready, httpx.Response) and ready.status_code in (200, 503):
            body = ready.json()
            part.state = "up" if ready.status_code == 200 else "not_ready"
            part.dependencies = {
                name: {"up": bool(dep.get("ok")), "latency_ms": dep.get("latency_ms")}
                for name, dep in (body.get("dependencies") or {}).items()
            }
        else:
            part.state = "not_ready"
        if isinstance(metrics, httpx.Response) and metrics.status_code == 200:
            self._add_sample(part, parse_metrics(metrics.text, time.monotonic()))

    def _add_sample(self, part: Part, sample: Sample) -> None:
        if part.samples:
            self._note_errors(part.name, part.samples[-1], sample)
        part.samples.append(sample)
        while part.samples and sample.at - part.samples[0].at > HISTORY_S:
            part.samples.popleft()

    def _note_errors(self, service: str, old: Sample, new: Sample) -> None:
        now = time.time()
        for (route, status), count in _delta(new.requests, old.requests).items():
            if count > 0 and (status.startswith("5") or status == "429"):
                self.last_errors.appendleft(
                    {"at": now, "service": service, "what": status, "route": route, "n": count}
                )
        for kind, count in _delta(new.model_failures, old.model_failures).items():
            if count > 0:
                self.last_errors.appendleft(
                    {"at": now, "service": service, "what": kind, "route": "model", "n": count}
                )

    # ---- the view ----------------------------------------------------------------------------
    def snapshot(self) -> dict:
        rows = [self._row(part) for part in self.parts.values()]
        return {
            "generated_at": time.time(),
            "poll_interval_s": FAST_S,
            "parts": rows,
            "stores": self._stores(),
            "last_errors": list(self.last_errors),
        }

    def _row(self, part: Part) -> dict:
        row: dict = {
            "name": part.name,
            "kind": part.kind,
            "state": part.state,
            "checked_at": part.checked_at,
            "health_ms": part.health_ms,
            "dependencies": part.dependencies,
        }
        if part.samples and part.state != "down":  # a stopped part's old figures would mislead
            last = part.samples[-1]
            row["started_at"] = last.started
            row["uptime_s"] = round(time.time() - last.started) if last.started else None
            row["gauges"] = last.gauges
            row.update(window_figures(part.samples))
        return row

    def _stores(self) -> list[dict]:
        """Each store as the services that use it see it (down if any of them fails it)."""
        seen: dict[str, dict] = {}
        for part in self.parts.values():
            for name, dep in part.dependencies.items():
                if name in self.parts:
                    continue  # a service, not a store
                store = seen.setdefault(name, {"name": name, "up": True, "latency_ms": 0.0})
                store["up"] = store["up"] and dep["up"]
                store["latency_ms"] = max(store["latency_ms"], dep.get("latency_ms") or 0.0)
                store.setdefault("checked_by", []).append(part.name)
        return sorted(seen.values(), key=lambda s: s["name"])


@contextlib.asynccontextmanager
async def running_board(app: FastAPI) -> AsyncIterator[StatusBoard]:
    """The board of this process, polling while the app runs (on app.state.status_board)."""
    board = StatusBoard(StatusSettings())
    app.state.status_board = board
    task = asyncio.create_task(board.run())
    try:
        yield board
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def status_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    headers = {"content-security-policy": CSP, "cache-control": "no-cache"}

    def board(request: Request) -> StatusBoard:
        found: StatusBoard = request.app.state.status_board
        found.viewed()
        return found

    @router.get("/status")
    async def page(request: Request) -> FileResponse:
        board(request)
        return FileResponse(PAGE_DIR / "index.html", headers=headers)

    @router.get("/status/app.js")
    async def script() -> FileResponse:
        return FileResponse(PAGE_DIR / "app.js", media_type="text/javascript", headers=headers)

    @router.get("/status/style.css")
    async def style() -> FileResponse:
        return FileResponse(PAGE_DIR / "style.css", media_type="text/css", headers=headers)

    @router.get("/status/api")
    async def figures(request: Request) -> FastJSONResponse:
        return FastJSONResponse(board(request).snapshot(), headers={"cache-control": "no-store"})

    return router
