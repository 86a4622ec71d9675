"""The internal HTTP client: timeouts, a fresh signed assertion per attempt (lectern_common.trust),
request-id propagation, retries with backoff for idempotent calls and connection failures, and
a circuit breaker (lectern_common.breaker): a dependency that keeps failing is answered for at
once (503 dependency_unavailable) instead of every caller waiting out its timeout.

It runs on aiohttp rather than httpx: a search-sized JSON call costs ~0.3 ms of CPU with
aiohttp and 2.6-3.1 ms with httpx (bench/client_cpu_bench.py), and every answer makes one."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import structlog
from multidict import CIMultiDictProxy

from lectern_common.breaker import CircuitBreaker
from lectern_common.context import current_request_id
from lectern_common.errors import ApiError
from lectern_common.settings import ServiceSettings
from lectern_common.trust import AssertionSigner

log = structlog.get_logger()

RETRY_STATUSES = {502, 503, 504}
IDEMPOTENT = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}
# No connection was made: safe to send again whatever the method.
NOT_CONNECTED = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
# The connection broke before a reply (often a kept-alive connection the other side had
# closed); the request may have arrived, so only what may be repeated is sent again.
NO_REPLY = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


# Replies that count against the breaker: the service or the way to it is in trouble (a 503 is
# an answer the service chose, e.g. its own store is away, and comes back fast).
BREAKER_STATUSES = {502, 504}


class ServiceUnavailable(ApiError):
    def __init__(self, service: str, reason: str, *, retry_after_s: int = 5) -> None:
        super().__init__(
            503,
            "dependency_unavailable",
            f"{service} is unavailable",
            headers={"Retry-After": str(retry_after_s)},
        )
        self.service, self.reason = service, reason


@dataclass(frozen=True)
class InternalResponse:
    """A whole reply of an internal service (bodies are small JSON documents)."""

    status_code: int
    headers: CIMultiDictProxy[str]
    content: bytes

    def json(self) -> Any:
        return orjson.loads(self.content)


def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds, connect=min(3.0, seconds))


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class RecentFirstConnector(aiohttp.TCPConnector):
    """A connector that hands out the most recently used idle connection first. aiohttp's
    hands out the oldest (a FIFO queue), so under a steady load every connection a peak opened
    is used again within its keep-alive and none ever closes: the pool keeps the day's peak (in
    the soak, chat's connections to retrieval went 5 -> 7 -> 12 and stayed). Recent-first, as
    Go's (Traefik's) and httpcore's pools do, leaves the connections above the present need
    idle, and they close after `keepalive_timeout` (15 s)."""

    def _release(self, key: Any, protocol: Any, *, should_close: bool = False) -> None:
        super()._release(key, protocol, should_close=should_close)
        idle = self._conns.get(key)
        if idle and idle[-1][0] is protocol:  # kept: move it from the back to the front
            idle.rotate(1)


class InternalClient:
    """A client for one internal service. `request` raises ServiceUnavailable when the service
    cannot be reached (after retries), times out or breaks off its reply, and returns the
    whole response otherwise. Create it inside the running event loop (a lifespan)."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        token: str,
        timeout_s: float = 10.0,
        retries: int = 2,
        max_connections: int = 200,
        breaker_failures: int = 5,
        breaker_cooldown_s: float = 0.5,
        breaker_max_cooldown_s: float = 10.0,
    ) -> None:
        self.name, self.retries = name, retries
        self.breaker = CircuitBreaker(
            name,
            failures=breaker_failures,
            cooldown_s=breaker_cooldown_s,
            max_cooldown_s=breaker_max_cooldown_s,
        )
        self.base_url = base_url.rstrip("/")
        self.signer = AssertionSigner(token) if token else None
        self.session = aiohttp.ClientSession(
            connector=RecentFirstConnector(limit=max_connections),
            timeout=_timeout(timeout_s),
            json_serialize=_dumps,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        retry_posts: bool = False,
        user_id: str | None = None,
        timeout_s: float | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        retries: int | None = None,
    ) -> InternalResponse:
        if not self.breaker.allow():
            log.info("internal.breaker_open", service=self.name, path=path)
            raise ServiceUnavailable(
                self.name, "circuit_open", retry_after_s=self.breaker.retry_after_s()
            )
        ok = abandoned = False
        try:
            reply = await self._request(
                method,
                path,
                retry_posts=retry_posts,
                user_id=user_id,
                timeout_s=timeout_s,
                json=json,
                headers=headers,
                retries=retries,
            )
            ok = reply.status_code not in BREAKER_STATUSES
            return reply
        except asyncio.CancelledError:
            # The caller gave up (a reader left; chat drops the profile fetch of an answer
            # that needs none): not the dependency's failure. Counted as one, five cancelled
            # fetches in a row opened the breaker on a healthy service.
            abandoned = True
            raise
        finally:
            if ok:
                self.breaker.succeeded()
            elif abandoned:
                self.breaker.abandoned()
            else:
                self.breaker.failed()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        retry_posts: bool,
        user_id: str | None,
        timeout_s: float | None,
        json: Any,
        headers: dict[str, str] | None,
        retries: int | None,
    ) -> InternalResponse:
        # Lower-case names, so the signature binds the identity headers whatever their spelling.
        headers = {name.lower(): value for name, value in (headers or {}).items()}
        if rid := current_request_id():
            headers["x-request-id"] = rid
        if user_id:
            headers["x-user-id"] = user_id
        timeout = _timeout(timeout_s) if timeout_s is not None else None
        may_retry = method.upper() in IDEMPOTENT or retry_posts
        retries = self.retries if retries is None else retries
        url = self.base_url + path
        attempt = 0
        while True:
            self._sign(headers)
            try:
                async with self.session.request(
                    method, url, json=json, headers=headers, timeout=timeout
                ) as response:
                    reply = InternalResponse(
                        response.status, response.headers, await response.read()
                    )
            except (*NOT_CONNECTED, *NO_REPLY) as exc:
                if attempt < retries and (may_retry or isinstance(exc, NOT_CONNECTED)):
                    attempt += 1
                    await asyncio.sleep(_backoff(attempt))
                    continue
                raise self._unavailable(path, type(exc).__name__) from exc
            except TimeoutError as exc:
                raise self._unavailable(path, "timeout") from exc
            except aiohttp.ClientError as exc:  # e.g. a reply cut off half way
                raise self._unavailable(path, type(exc).__name__) from exc
            if reply.status_code in RETRY_STATUSES and may_retry and attempt < retries:
                attempt += 1
                await asyncio.sleep(_backoff(attempt))
                continue
            return reply

    def _sign(self, headers: dict[str, str]) -> None:
        # Per attempt: a retry after a backoff must not arrive with an assertion near its age
        # limit. It binds exactly the identity headers this call sends.
        if self.signer is not None:
            headers["x-internal-token"] = self.signer.sign(
                "svc",
                user_id=headers.get("x-user-id", ""),
                request_id=headers.get("x-request-id", ""),
                rate_key=headers.get("x-rate-key", ""),
            )

    def _unavailable(self, path: str, reason: str) -> ServiceUnavailable:
        log.warning("internal.unavailable", service=self.name, path=path, reason=reason)
        return ServiceUnavailable(self.name, reason)

    async def get(self, path: str, **kwargs: Any) -> InternalResponse:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> InternalResponse:
        return await self.request("POST", path, **kwargs)

    async def ping(self) -> None:
        response = await self.request("GET", "/health", timeout_s=2.0, retries=0)
        if response.status_code != 200:
            raise ServiceUnavailable(self.name, f"status {response.status_code}")

    async def aclose(self) -> None:
        await self.session.close()


def _backoff(attempt: int) -> float:
    return min(2.0, 0.1 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)


@asynccontextmanager
async def open_internal_client(
    settings: ServiceSettings, *, name: str, base_url: str, timeout_s: float | None = None
) -> AsyncIterator[InternalClient]:
    """An internal client for a lifespan, with the service's internal token, timeout and
    breaker settings."""
    client = InternalClient(
        name=name,
        base_url=base_url,
        token=settings.internal_token.get_secret_value(),
        timeout_s=settings.http_timeout_s if timeout_s is None else timeout_s,
        breaker_failures=settings.breaker_failures,
        breaker_cooldown_s=settings.breaker_cooldown_s,
        breaker_max_cooldown_s=settings.breaker_max_cooldown_s,
    )
    try:
        yield client
    finally:
        await client.aclose()
