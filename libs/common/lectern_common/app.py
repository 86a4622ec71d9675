"""Wires the shared pieces into a service's FastAPI app (the service keeps its own factory):
the lifespan that opens the service's state on one exit stack, health, errors, middleware."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Protocol

from fastapi import FastAPI, Request

from lectern_common import metrics
from lectern_common.draining import Drain
from lectern_common.errors import install_error_handlers
from lectern_common.health import Check, health_router
from lectern_common.limits import BodyLimitMiddleware
from lectern_common.logging import configure_logging
from lectern_common.middleware import RequestContextMiddleware
from lectern_common.settings import ServiceSettings
from lectern_common.status import running_board, status_router


class ServiceState(Protocol):
    """What a service's lifespan opens and its routes use; it names its own dependencies."""

    def checks(self) -> dict[str, Check]: ...


class Drains(Protocol):
    """A state with work to end on SIGTERM (open answer streams) has `drain(deadline)`."""

    async def drain(self, deadline: float) -> None: ...


# Opens the state, entering everything it opens on the stack: closed in reverse order at
# shutdown, and also when a later step of the opening fails.
OpenState = Callable[[AsyncExitStack], Awaitable[ServiceState]]


def build_app(
    settings: ServiceSettings,
    *,
    title: str,
    open_state: OpenState,
    version: str = "0.1.0",
    larger_bodies: Mapping[str, int] | None = None,
    status_page: bool = False,
) -> FastAPI:
    """The app with the error envelope, /health and /ready, and the shared middleware; its
    state is `request.state.<service_name>`. Every body is capped at
    `settings.max_body_bytes`, the paths in `larger_bodies` at their own. With `status_page`
    it also serves /status (lectern_common.status) and polls the other parts for it."""
    key = settings.service_name
    drain = Drain(grace_s=settings.shutdown_grace_s, notice_s=settings.drain_notice_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, ServiceState]]:
        async with AsyncExitStack() as stack:
            if status_page:
                await stack.enter_async_context(running_board(app))
            state = await open_state(stack)
            if hasattr(state, "drain"):
                drain.add(state.drain)
            drain.install()
            stack.callback(drain.uninstall)
            yield {key: state}

    def checks(request: Request) -> dict[str, Check]:
        state: ServiceState = getattr(request.state, key)
        return state.checks()

    configure_logging(
        service=settings.service_name, level=settings.log_level, json=settings.log_json
    )
    metrics.service_started(settings.service_name)
    app = FastAPI(title=title, version=version, lifespan=lifespan)
    app.state.settings = settings
    app.state.drain = drain
    install_error_handlers(app)
    app.include_router(health_router(service=settings.service_name, checks=checks))
    if status_page:
        app.include_router(status_router())
    # Added first, so it runs inside the request context: a refused body gets the request id,
    # and the trust check has already run (a body is read only for a request that passed it).
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, larger=larger_bodies)
    app.add_middleware(
        RequestContextMiddleware,
        service=settings.service_name,
        internal_token=settings.internal_token.get_secret_value(),
    )
    return app
