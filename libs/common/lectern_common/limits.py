"""The request body cap every service installs (pure ASGI, so streamed responses pass through
untouched): a body over the limit is refused with the 413 envelope before the route sees it, by
its Content-Length when it declares one, by counting its bytes as they arrive when it is
chunked."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lectern_common.errors import error_response


class BodyLimitMiddleware:
    """At most `max_bytes` per request body. A chunked body is read here (it is small) and
    handed on once it is whole, so that a route that ignores its body refuses it too. The
    paths in `larger` (exact paths: an upload route) have a cap of their own, and a chunked
    body there is counted as the route reads it instead of being held in memory first."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, larger: Mapping[str, int] | None = None
    ) -> None:
        self.app, self.max_bytes = app, max_bytes
        self.larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = self.larger.get(path, self.max_bytes)
        headers = dict(scope.get("headers", ()))
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > limit:
                await self._refuse(limit, scope, receive, send)
            else:
                await self.app(scope, receive, send)
        elif b"transfer-encoding" not in headers:  # no body at all
            await self.app(scope, receive, send)
        elif path in self.larger:
            await self.app(scope, _counted(receive, limit), send)
        elif (held := await _read_at_most(receive, limit)) is None:
            await self._refuse(limit, scope, receive, send)
        else:
            await self.app(scope, _replayed(held, receive), send)

    @staticmethod
    async def _refuse(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"the request body must be at most {limit} bytes"
        await error_response(413, "payload_too_large", message)(scope, receive, send)


async def _read_at_most(receive: Receive, limit: int) -> list[Message] | None:
    """The body's messages once it has ended (or the client left), None once it passed `limit`."""
    held: list[Message] = []
    received = 0
    while True:
        message = await receive()
        held.append(message)
        if message["type"] != "http.request":
            return held
        received += len(message.get("body", b""))
        if received > limit:
            return None
        if not message.get("more_body", False):
            return held


def _replayed(held: list[Message], receive: Receive) -> Receive:
    """The messages already read, then whatever comes next (a disconnect)."""
    pending = list(held)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


def _counted(receive: Receive, limit: int) -> Receive:
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > limit:
            # Raised inside the route's body read: FastAPI and Starlette's form parser pass an
            # HTTPException from there on as is, and the envelope handler makes it the 413.
            raise HTTPException(413, f"the request body must be at most {limit} bytes")
        return message

    return counted
