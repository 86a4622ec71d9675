"""The summary service's app factory and lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import structlog
from fastapi import FastAPI, Request

from lectern_common.app import build_app
from lectern_common.gemini import Gemini
from lectern_common.health import Check
from lectern_common.http import InternalClient
from lectern_common.redis import Keys
from lectern_common.stores import open_postgres, open_redis, postgres_check, redis_check
from lectern_common.tasks import BackgroundTasks
from lectern_summary.api import router
from lectern_summary.flight import Flight
from lectern_summary.generation import Generator
from lectern_summary.settings import SummarySettings
from lectern_summary.state import SummaryState
from lectern_summary.writer import Writer

MIGRATIONS = Path(__file__).parent / "migrations"
# At shutdown a streamed generation gets this long to finish and store its text; then it is
# cancelled (its lock is released, and a later request generates it again).
GENERATION_SHUTDOWN_WAIT_S = 5.0

log = structlog.get_logger()


def create_app(settings: SummarySettings | None = None) -> FastAPI:
    settings = settings or SummarySettings()
    token = settings.internal_token.get_secret_value()

    def client(name: str, base_url: str) -> InternalClient:
        return InternalClient(
            name=name, base_url=base_url, token=token, timeout_s=settings.http_timeout_s
        )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict]:
        async with AsyncExitStack() as stack:
            pool = await stack.enter_async_context(
                open_postgres(settings, schema="summary", migrations=MIGRATIONS)
            )
            redis = await stack.enter_async_context(open_redis(settings))
            retrieval = client("retrieval", settings.retrieval_url)
            stack.push_async_callback(retrieval.aclose)
            profile = client("profile", settings.profile_url)
            stack.push_async_callback(profile.aclose)
            gemini = Gemini(settings.gemini_config()) if settings.gemini_enabled else None
            if gemini is not None:
                stack.push_async_callback(gemini.aclose)
            flight = Flight(
                redis,
                Keys(settings.redis_prefix),
                ttl_s=settings.lock_ttl_s,
                failure_memory_s=settings.failure_memory_s,
            )
            generator = Generator(
                settings=settings,
                pool=pool,
                flight=flight,
                writer=Writer(gemini, settings) if gemini else None,
            )
            background = BackgroundTasks("summary.generations")
            # Registered last, so it runs first: generations end before their clients close.
            stack.push_async_callback(background.drain, timeout_s=GENERATION_SHUTDOWN_WAIT_S)
            log.info("summary.started", model=settings.gemini_model if gemini else "extractive")
            yield {
                "summary": SummaryState(
                    settings=settings,
                    pool=pool,
                    redis=redis,
                    retrieval=retrieval,
                    profile=profile,
                    generator=generator,
                    background=background,
                )
            }

    def checks(request: Request) -> dict[str, Check]:
        state: SummaryState = request.state.summary
        return {
            "postgres": postgres_check(state.pool),
            "redis": redis_check(state.redis),
            "retrieval": state.retrieval.ping,
            "profile": state.profile.ping,
        }

    app = build_app(settings, title="Lectern summary", lifespan=lifespan, checks=checks)
    app.include_router(router)
    return app
