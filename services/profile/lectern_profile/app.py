"""The profile service's app factory and lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request

from lectern_common.app import build_app
from lectern_common.http import InternalClient
from lectern_common.stores import Stores, open_stores
from lectern_profile.api import router
from lectern_profile.settings import ProfileSettings

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class ProfileState:
    settings: ProfileSettings
    stores: Stores
    chat: InternalClient


def create_app(settings: ProfileSettings | None = None) -> FastAPI:
    settings = settings or ProfileSettings()
    token = settings.internal_token.get_secret_value()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict]:
        async with open_stores(settings, schema="profile", migrations=MIGRATIONS) as stores:
            chat = InternalClient(name="chat", base_url=settings.chat_url, token=token,
                                  timeout_s=settings.http_timeout_s)
            try:
                yield {"profile": ProfileState(settings, stores, chat)}
            finally:
                await chat.aclose()

    def checks(request: Request) -> dict:
        state: ProfileState = request.state.profile
        return state.stores.checks()

    app = build_app(settings, title="Lectern profile", lifespan=lifespan, checks=checks)
    app.include_router(router)
    return app
