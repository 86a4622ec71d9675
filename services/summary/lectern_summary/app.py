"""The summary service's app factory and lifespan."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import structlog
from fastapi import FastAPI

from lectern_common.app import build_app
from lectern_common.gemini import open_gemini
from lectern_common.http import open_internal_client
from lectern_common.redis import Keys
from lectern_common.stores import open_postgres, open_redis
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

    async def open_state(stack: AsyncExitStack) -> SummaryState:
        pool = await stack.enter_async_context(
            open_postgres(settings, schema="summary", migrations=MIGRATIONS)
        )
        redis = await stack.enter_async_context(open_redis(settings))
        retrieval = await stack.enter_async_context(
            open_internal_client(settings, name="retrieval", base_url=settings.retrieval_url)
        )
        profile = await stack.enter_async_context(
            open_internal_client(settings, name="profile", base_url=settings.profile_url)
        )
        gemini = await stack.enter_async_context(
            open_gemini(settings.gemini_config() if settings.gemini_enabled else None)
        )
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
        return SummaryState(
            settings=settings,
            pool=pool,
            redis=redis,
            retrieval=retrieval,
            profile=profile,
            generator=generator,
            background=background,
        )

    # The status page: mounted by profile and summary (the gateway fails over between them).
    app = build_app(settings, title="Lectern summary", open_state=open_state, status_page=True)
    app.include_router(router)
    return app
