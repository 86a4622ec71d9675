"""The internal HTTP client: timeouts, the internal token, request-id propagation and retries
with backoff for idempotent calls and connection failures."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import structlog

from lectern_common.context import current_request_id
from lectern_common.errors import ApiError

log = structlog.get_logger()

RETRY_STATUSES = {502, 503, 504}
IDEMPOTENT = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}


class ServiceUnavailable(ApiError):
    def __init__(self, service: str, reason: str) -> None:
        super().__init__(503, "dependency_unavailable", f"{service} is unavailable")
        self.service, self.reason = service, reason


class InternalClient:
    """A client for one internal service. `request_json` raises ServiceUnavailable when the
    service cannot be reached (after retries) and returns the httpx.Response otherwise."""

    def __init__(self, *, name: str, base_url: str, token: str, timeout_s: float = 10.0,
                 retries: int = 2, max_connections: int = 200) -> None:
        self.name, self.retries = name, retries
        self.client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout_s, connect=min(3.0, timeout_s)),
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections),
            headers={"x-internal-token": token} if token else {},
        )

    async def request(self, method: str, path: str, *, retry_posts: bool = False,
                      user_id: str | None = None, timeout_s: float | None = None,
                      **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if rid := current_request_id():
            headers["x-request-id"] = rid
        if user_id:
            headers["x-user-id"] = user_id
        if timeout_s is not None:
            kwargs["timeout"] = httpx.Timeout(timeout_s, connect=min(3.0, timeout_s))
        may_retry = method.upper() in IDEMPOTENT or retry_posts
        attempt = 0
        while True:
            try:
                response = await self.client.request(method, path, headers=headers, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
                # Nothing reached the service: safe to retry whatever the method.
                if attempt < self.retries:
                    attempt += 1
                    await asyncio.sleep(_backoff(attempt))
                    continue
                log.warning("internal.unreachable", service=self.name, path=path,
                            error=type(exc).__name__)
                raise ServiceUnavailable(self.name, type(exc).__name__) from exc
            except httpx.TimeoutException as exc:
                log.warning("internal.timeout", service=self.name, path=path)
                raise ServiceUnavailable(self.name, "timeout") from exc
            if response.status_code in RETRY_STATUSES and may_retry and attempt < self.retries:
                attempt += 1
                await asyncio.sleep(_backoff(attempt))
                continue
            return response

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def ping(self) -> None:
        response = await self.client.get("/health", timeout=2.0)
        response.raise_for_status()

    async def aclose(self) -> None:
        await self.client.aclose()


def _backoff(attempt: int) -> float:
    return min(2.0, 0.1 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
