"""Pure-ASGI middleware: request id, access log, Prometheus metrics, the trust check (the
signed assertion of lectern_common.trust) and the 500 envelope of an unhandled error.

Pure ASGI (not BaseHTTPMiddleware) so streamed responses pass through untouched.
"""

from __future__ import annotations

import re
import time
import uuid

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lectern_common.context import request_id_var
from lectern_common.errors import error_body
from lectern_common.metrics import HTTP_LATENCY, HTTP_REQUESTS
from lectern_common.trust import AssertionSigner, Kind

log = structlog.get_logger()

# Served to anyone: they need no identity and say nothing about a reader. /errors/ holds the
# gateway's own error bodies (its 404 and 502 answers); /status the status page (aggregates).
OPEN_PATHS = (
    "/health",
    "/ready",
    "/accepting",
    "/metrics",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/errors/",
    "/status",
)
# The forwardAuth target: Traefik calls it with the client's credential and no secret (it only
# says whether that credential is valid, as Better Auth's own get-session does).
EXEMPT_PATHS = frozenset({"/internal/auth/verify"})
# The headers the assertion vouches for; the app sees them only when it verified.
_VOUCHED = (b"x-user-id", b"x-request-id", b"x-rate-key")
_STRIPPED = frozenset({b"x-internal-token", b"x-user-id", b"x-rate-key"})
# Logged only when they fail: probes, and the gateway's forwardAuth call made for every request
# (Traefik's access log and the routed service already log that request). /ready stays logged
# (tests/security read an open path's log line there), also the status page's polls of it.
QUIET_PATHS = {"/health", "/accepting", "/metrics", "/internal/auth/verify", "/status/api"}
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def incoming_request_id(scope: Scope) -> str:
    rid = _header(scope, b"x-request-id")
    return rid if rid and _SAFE_ID.match(rid) else uuid.uuid4().hex


def _vouched_headers(scope: Scope) -> tuple[str | None, dict[bytes, str]] | None:
    """The assertion and the headers it vouches for; None when one of them is repeated (a
    second X-User-Id must not be the one the app reads)."""
    assertion: str | None = None
    vouched: dict[bytes, str] = {}
    for key, value in scope.get("headers", ()):
        if key == b"x-internal-token":
            if assertion is not None:
                return None
            assertion = value.decode("latin-1")
        elif key in _VOUCHED:
            if key in vouched:
                return None
            vouched[key] = value.decode("latin-1")
    return assertion, vouched


class RequestContextMiddleware:
    """Binds request_id (and the verified user_id), logs and measures each request, refuses
    requests whose assertion is missing, forged, stale or made for other headers (when a secret
    is configured; open paths pass without one, but never see an unverified X-User-Id), and
    turns an unhandled error into the 500 envelope. That happens here, while the request id is
    still bound (Starlette's own handler for Exception runs outside every middleware, where the
    envelope's `request_id` would be null), and the error is logged once, with its trace."""

    def __init__(self, app: ASGIApp, *, service: str, internal_token: str = "") -> None:
        self.app, self.service = app, service
        self.signer = AssertionSigner(internal_token) if internal_token else None

    def _trust(self, scope: Scope) -> Kind | None:
        """Who vouched for this request's identity headers (None: nobody, or not validly)."""
        if self.signer is None:
            return "svc"
        found = _vouched_headers(scope)
        if found is None:
            return None
        assertion, vouched = found
        if assertion is None:
            return None
        return self.signer.verify(
            assertion,
            user_id=vouched.get(b"x-user-id", ""),
            request_id=vouched.get(b"x-request-id", ""),
            rate_key=vouched.get(b"x-rate-key", ""),
        )

    @staticmethod
    def _allowed(path: str, kind: Kind | None) -> bool:
        if path in EXEMPT_PATHS or path.startswith(OPEN_PATHS):
            return True
        # Verify answers anyone who reaches the profile service, so only a service's own
        # assertion opens the routes the gateway never forwards.
        return kind == "svc" or (kind == "gw" and not path.startswith("/internal/"))

    @staticmethod
    def _without_unverified(scope: Scope) -> Scope:
        headers = [(k, v) for k, v in scope.get("headers", ()) if k not in _STRIPPED]
        return {**scope, "headers": headers}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = incoming_request_id(scope)
        token = request_id_var.set(rid)
        path = scope.get("path", "")
        kind = self._trust(scope)
        allowed = self._allowed(path, kind)
        if kind is None:
            scope = self._without_unverified(scope)
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

        try:
            if not allowed:
                await _send_error(
                    send_wrapper, 401, "unauthorized", "missing or invalid internal assertion"
                )
            else:
                await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            log.exception("request.unhandled", error_type=type(exc).__name__)
            # Once a response has started its status is sent: the server closes the connection.
            if not started:
                await _send_error(send_wrapper, 500, "internal_error", "internal error")
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            HTTP_REQUESTS.labels(self.service, scope["method"], template, str(status)).inc()
            HTTP_LATENCY.labels(self.service, scope["method"], template).observe(elapsed)
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


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    """The error envelope as a whole response, for answers made before the app runs."""
    body = orjson.dumps(error_body(code, message))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
