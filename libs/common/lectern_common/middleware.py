"""Pure-ASGI middleware: request id, access log, Prometheus metrics, the internal-token guard
and the 500 envelope of an unhandled error.

Pure ASGI (not BaseHTTPMiddleware) so streamed responses pass through untouched.
"""

from __future__ import annotations

import hmac
import re
import time
import uuid

import orjson
import structlog
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lectern_common.context import request_id_var
from lectern_common.errors import error_body

log = structlog.get_logger()

REQUESTS = Counter(
    "lectern_http_requests_total", "HTTP requests", ["service", "method", "route", "status"]
)
LATENCY = Histogram(
    "lectern_http_request_duration_seconds",
    "HTTP request latency (to last byte)",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)

OPEN_PATHS = ("/health", "/ready", "/metrics", "/docs", "/redoc", "/openapi.json")
# Logged only when they fail: probes, and the gateway's forwardAuth call made for every request
# (Traefik's access log and the routed service already log that request).
QUIET_PATHS = {"/health", "/metrics", "/internal/auth/verify"}
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def incoming_request_id(scope: Scope) -> str:
    rid = _header(scope, b"x-request-id")
    return rid if rid and _SAFE_ID.match(rid) else uuid.uuid4().hex


class RequestContextMiddleware:
    """Binds request_id (and user_id when the gateway set one), logs and measures each request,
    refuses requests that do not carry the internal token (when one is configured), and turns
    an unhandled error into the 500 envelope. That happens here, while the request id is still
    bound (Starlette's own handler for Exception runs outside every middleware, where the
    envelope's `request_id` would be null), and the error is logged once, with its trace."""

    def __init__(self, app: ASGIApp, *, service: str, internal_token: str = "") -> None:
        self.app, self.service = app, service
        self.token = internal_token.encode()

    def _trusted(self, scope: Scope) -> bool:
        if not self.token:
            return True
        got = _header(scope, b"x-internal-token")
        return got is not None and hmac.compare_digest(got.encode(), self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = incoming_request_id(scope)
        token = request_id_var.set(rid)
        user_id = _header(scope, b"x-user-id")
        structlog.contextvars.bind_contextvars(request_id=rid, user_id=user_id)
        start = time.perf_counter()
        status = 500

        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        path = scope.get("path", "")
        try:
            if not path.startswith(OPEN_PATHS) and not self._trusted(scope):
                await self._reject(send_wrapper)
            else:
                await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            log.exception("request.unhandled", error_type=type(exc).__name__)
            # Once a response has started its status is sent: the server closes the connection.
            if not started:
                await _internal_error(send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            REQUESTS.labels(self.service, scope["method"], template, str(status)).inc()
            LATENCY.labels(self.service, scope["method"], template).observe(elapsed)
            if path not in QUIET_PATHS or status >= 400:
                log.info(
                    "http.request",
                    method=scope["method"],
                    path=path,
                    status=status,
                    duration_ms=round(elapsed * 1000, 1),
                )
            structlog.contextvars.unbind_contextvars("request_id", "user_id")
            request_id_var.reset(token)

    @staticmethod
    async def _reject(send: Send) -> None:
        body = orjson.dumps(error_body("unauthorized", "missing or invalid internal token"))
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def _internal_error(send: Send) -> None:
    body = orjson.dumps(error_body("internal_error", "internal error"))
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
