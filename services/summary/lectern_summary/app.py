"""The summary service's app factory and lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from fastapi import FastAPI, Request

from lectern_common.app import build_app
from lectern_common.gemini import Gemini
from lectern_common.http import InternalClient
from lectern_common.stores import open_stores
from lectern_summary.api import router
from lectern_summary.flight import Flight
from lectern_summary.generation import Generator
from lectern_summary.settings import SummarySettings
from lectern_summary.state import SummaryState
from lectern_summary.writer import Writer

MIGRATIONS = Path(__file__).parent / "migrations"

log = structlog.get_logger()


def create_app(settings: SummarySettings | None = None) -> FastAPI:
    settings = settings or SummarySettings()
    token = settings.internal_token.get_secret_value()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict]:
        async with open_stores(settings, schema="summary", migrations=MIGRATIONS) as stores:
            retrieval = InternalClient(
                name="retrieval",
                base_url=settings.retrieval_url,
                token=token,
                timeout_s=settings.http_timeout_s,
            )
            profile = InternalClient(
                name="profile",
                base_url=settings.profile_url,
                token=token,
                timeout_s=settings.http_timeout_s,
            )
            gemini = Gemini(settings.gemini_config()) if settings.gemini_enabled else None
            flight = Flight(
                stores.redis,
                stores.keys,
                ttl_s=settings.lock_ttl_s,
                failure_memory_s=settings.failure_memory_s,
            )
            generator = Generator(
                settings=settings,
                pool=stores.pool,
                flight=flight,
                writer=Writer(gemini, settings) if gemini else None,
            )
            log.info("summary.started", model=settings.gemini_model if gemini else "extractive")
            try:
                yield {"summary": SummaryState(settings, stores, retrieval, profile, generator)}
            finally:
                await retrieval.aclose()
                await profile.aclose()
                if gemini is not None:
                    await gemini.aclose()

    def checks(request: Request) -> dict:
        state: SummaryState = request.state.summary
        return {
            **state.stores.checks(),
            "retrieval": state.retrieval.ping,
            "profile": state.profile.ping,
        }

    app = build_app(settings, title="Lectern summary", lifespan=lifespan, checks=checks)
    app.include_router(router)
    return app
