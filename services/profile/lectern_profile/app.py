"""The profile service's app factory and lifespan."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

from fastapi import FastAPI

from lectern_common.app import build_app
from lectern_common.http import open_internal_client
from lectern_common.stores import open_postgres
from lectern_profile.api import router
from lectern_profile.settings import ProfileSettings
from lectern_profile.state import ProfileState
from lectern_profile.verification import JwksKeys, Verifier

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: ProfileSettings | None = None) -> FastAPI:
    settings = settings or ProfileSettings()

    async def open_state(stack: AsyncExitStack) -> ProfileState:
        pool = await stack.enter_async_context(
            open_postgres(settings, schema="profile", migrations=MIGRATIONS)
        )
        chat = await stack.enter_async_context(
            open_internal_client(settings, name="chat", base_url=settings.chat_url)
        )
        keys = JwksKeys(
            url=settings.jwks_url,
            timeout_s=settings.jwks_timeout_s,
            min_refetch_s=settings.jwks_min_refetch_s,
        )
        stack.push_async_callback(keys.aclose)
        verifier = Verifier(settings=settings, pool=pool, keys=keys)
        return ProfileState(settings, pool, chat, verifier)

    # The status page: mounted by profile and summary (the gateway fails over between them).
    app = build_app(settings, title="Lectern profile", open_state=open_state, status_page=True)
    app.include_router(router)
    return app
