"""The summary service's app factory and lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request

from lectern_common.app import build_app
from lectern_common.http import InternalClient
from lectern_common.stores import Stores, open_stores
from lectern_summary.api import router
from lectern_summary.settings import SummarySettings

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class SummaryState:
    settings: SummarySettings
    stores: Stores
    retrieval: InternalClient
    profile: InternalClient


def create_app(settings: SummarySettings | None = None) -> FastAPI:
    settings = settings or SummarySettings()
    token = settings.internal_token.get_secret_value()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict]:
        async with open_stores(settings, schema="summary", migrations=MIGRATIONS) as stores:
            retrieval = InternalClient(name="retrieval", base_url=settings.retrieval_url,
                                       token=token, timeout_s=settings.http_timeout_s)
            profile = InternalClient(name="profile", base_url=settings.profile_url,
                                     token=token, timeout_s=settings.http_timeout_s)
            try:
                yield {"summary": SummaryState(settings, stores, retrieval, profile)}
            finally:
                await retrieval.aclose()
                await profile.aclose()

    def checks(request: Request) -> dict:
        state: SummaryState = request.state.summary
        return {**state.stores.checks(), "retrieval": state.retrieval.ping,
                "profile": state.profile.ping}

    app = build_app(settings, title="Lectern summary", lifespan=lifespan, checks=checks)
    app.include_router(router)
    return app
