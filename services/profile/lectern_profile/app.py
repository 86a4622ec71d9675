"""The profile service's app factory and lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request

from lectern_common.app import build_app
from lectern_common.http import InternalClient
from lectern_common.stores import open_stores
from lectern_profile.api import router
from lectern_profile.settings import ProfileSettings
from lectern_profile.state import ProfileState
from lectern_profile.verification import JwksKeys, Verifier

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: ProfileSettings | None = None) -> FastAPI:
    settings = settings or ProfileSettings()
    token = settings.internal_token.get_secret_value()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict]:
        async with open_stores(settings, schema="profile", migrations=MIGRATIONS) as stores:
            chat = InternalClient(
                name="chat",
                base_url=settings.chat_url,
                token=token,
                timeout_s=settings.http_timeout_s,
            )
            keys = JwksKeys(
                url=settings.jwks_url,
                timeout_s=settings.jwks_timeout_s,
                min_refetch_s=settings.jwks_min_refetch_s,
            )
            verifier = Verifier(settings=settings, pool=stores.pool, keys=keys)
            try:
                yield {"profile": ProfileState(settings, stores, chat, verifier)}
            finally:
                await keys.aclose()
                await chat.aclose()

    def checks(request: Request) -> dict:
        state: ProfileState = request.state.profile
        return state.stores.checks()

    app = build_app(settings, title="Lectern profile", lifespan=lifespan, checks=checks)
    app.include_router(router)
    return app
