"""The retrieval service's app factory and lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request

from lectern_common.app import build_app
from lectern_common.stores import Stores, open_stores
from lectern_retrieval.api import router
from lectern_retrieval.settings import RetrievalSettings

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class RetrievalState:
    settings: RetrievalSettings
    stores: Stores


def create_app(settings: RetrievalSettings | None = None) -> FastAPI:
    settings = settings or RetrievalSettings()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict]:
        async with open_stores(settings, schema="retrieval", migrations=MIGRATIONS) as stores:
            yield {"retrieval": RetrievalState(settings, stores)}

    def checks(request: Request) -> dict:
        state: RetrievalState = request.state.retrieval
        return state.stores.checks()

    app = build_app(settings, title="Lectern retrieval", lifespan=lifespan, checks=checks)
    app.include_router(router)
    return app
