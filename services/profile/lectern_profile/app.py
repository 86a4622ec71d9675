"""The profile service's app factory and lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request

from lectern_common.app import build_app
from lectern_common.health import Check
from lectern_common.http import InternalClient
from lectern_common.stores import open_postgres, postgres_check
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
        async with AsyncExitStack() as stack:
            pool = await stack.enter_async_context(
                open_postgres(settings, schema="profile", migrations=MIGRATIONS)
            )
            chat = InternalClient(
                name="chat",
                base_url=settings.chat_url,
                token=token,
                timeout_s=settings.http_timeout_s,
            )
            stack.push_async_callback(chat.aclose)
            keys = JwksKeys(
                url=settings.jwks_url,
                timeout_s=settings.jwks_timeout_s,
                min_refetch_s=settings.jwks_min_refetch_s,
            )
            stack.push_async_callback(keys.aclose)
            verifier = Verifier(settings=settings, pool=pool, keys=keys)
            yield {"profile": ProfileState(settings, pool, chat, verifier)}

    def checks(request: Request) -> dict[str, Check]:
        # Only Postgres: forwardAuth reads sessions there on every request. The JWKS is fetched
        # once and cached (a signed-in reader keeps working while the auth server restarts), and
        # chat is called only when a reader deletes their profile.
        state: ProfileState = request.state.profile
        return {"postgres": postgres_check(state.pool)}

    app = build_app(settings, title="Lectern profile", lifespan=lifespan, checks=checks)
    app.include_router(router)
    return app
