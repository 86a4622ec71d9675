"""One error envelope for every service: {"error": {"code", "message", "request_id"}}."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from lectern_common import metrics
from lectern_common.context import current_request_id
from lectern_common.db import LOST_CONNECTION
from lectern_common.responses import FastJSONResponse

log = structlog.get_logger()

STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
    504: "timeout",
}


class ApiError(Exception):
    """An error a client should see, with a stable machine-readable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.headers = details, headers


def shutting_down() -> ApiError:
    """SIGTERM: this process starts no new stream; the client asks again (another replica, or
    this one restarted)."""
    return ApiError(
        503, "shutting_down", "this server is restarting; ask again", headers={"Retry-After": "1"}
    )


class NotFound(ApiError):
    def __init__(self, what: str = "resource") -> None:
        super().__init__(404, "not_found", f"{what} not found")


class DependencyUnavailable(ApiError):
    """A store or service this request needs cannot be reached right now; trying again later
    may work (the SSE form: an `error` event with `retryable: true`)."""

    def __init__(self, dependency: str) -> None:
        super().__init__(
            503,
            "dependency_unavailable",
            f"{dependency} is unavailable; try again shortly",
            headers={"Retry-After": "5"},
        )
        self.dependency = dependency

    def event_data(self) -> dict:
        """The `data` of the SSE `error` event that ends a stream this broke."""
        return {"code": self.code, "message": self.message, "retryable": True}


# What a store's client raises when the store is away (refused, reset or silent past its
# timeout), by the dependency's name as a client may see it. Any other error of its client is a
# bug (a 500).
DEPENDENCY_ERRORS: dict[type[Exception], str] = {
    RedisConnectionError: "redis",
    RedisTimeoutError: "redis",
    # The other clients here wrap their socket errors (aiohttp's ClientError, redis-py's
    # ConnectionError), so a bare ConnectionError comes from asyncpg.
    **dict.fromkeys(LOST_CONNECTION, "postgres"),
}


def dependency_error(exc: BaseException) -> DependencyUnavailable | None:
    """The client-facing form of `exc` when it says a dependency is away, else None: the one
    mapping the exception handler and the SSE streams (which have already sent 200) share."""
    if isinstance(exc, DependencyUnavailable):
        return exc
    for kind, name in DEPENDENCY_ERRORS.items():
        if isinstance(exc, kind):
            return _unavailable(name, exc)
    return None


def _unavailable(name: str, exc: BaseException) -> DependencyUnavailable:
    if name == "redis":
        metrics.redis_failed()
    # The exception's text (addresses, socket paths) stays in the log.
    log.warning(
        "dependency.unavailable", dependency=name, error_type=type(exc).__name__, error=str(exc)
    )
    return DependencyUnavailable(name)


def error_body(code: str, message: str, details: Any = None) -> dict:
    body: dict[str, Any] = {"code": code, "message": message, "request_id": current_request_id()}
    if details is not None:
        body["details"] = details
    return {"error": body}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> FastJSONResponse:
    if status in RETRY_STATUSES and not any(k.lower() == "retry-after" for k in headers or {}):
        # Every 429 (and 503) says when to come back, whichever code raised it.
        headers = {**(headers or {}), "Retry-After": DEFAULT_RETRY_AFTER_S}
    return FastJSONResponse(error_body(code, message, details), status_code=status, headers=headers)


RETRY_STATUSES = (429, 503)
DEFAULT_RETRY_AFTER_S = "5"


def _validation_details(exc: RequestValidationError) -> list[dict]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        out.append(
            {
                "field": ".".join(loc) or "body",
                "message": err.get("msg", "invalid"),
                "type": err.get("type", ""),
            }
        )
    return out


def install_error_handlers(app: FastAPI) -> None:
    """The envelope of the errors a route raises; an unhandled one becomes the 500 envelope in
    RequestContextMiddleware, where its request id is known."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> FastJSONResponse:
        return error_response(
            exc.status, exc.code, exc.message, details=exc.details, headers=exc.headers
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> FastJSONResponse:
        code = STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, code, message, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> FastJSONResponse:
        details = _validation_details(exc)
        if any(d["type"] == "json_invalid" for d in details):
            return error_response(400, "invalid_json", "request body is not valid JSON")
        fields = ", ".join(sorted({d["field"] for d in details}))
        return error_response(
            422, "validation_error", f"invalid request: {fields}", details=details
        )

    def _dependency_handler(name: str) -> Callable[[Request, Exception], Awaitable[Response]]:
        async def handler(_: Request, exc: Exception) -> Response:
            error = _unavailable(name, exc)
            return error_response(error.status, error.code, error.message, headers=error.headers)

        return handler

    # Once here for every route of every service, instead of a try at each call of a store.
    for kind, name in DEPENDENCY_ERRORS.items():
        app.add_exception_handler(kind, _dependency_handler(name))
