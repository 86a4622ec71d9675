"""The chat service's app factory and lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request

from lectern_common.app import build_app
from lectern_common.http import InternalClient
from lectern_common.stores import Stores, open_stores
from lectern_chat import pages
from lectern_chat.api import router
from lectern_chat.settings import ChatSettings

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class ChatState:
    settings: ChatSettings
    stores: Stores
    retrieval: InternalClient
    profile: InternalClient


def create_app(settings: ChatSettings | None = None) -> FastAPI:
    settings = settings or ChatSettings()
    token = settings.internal_token.get_secret_value()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict]:
        async with open_stores(settings, schema="chat", migrations=MIGRATIONS) as stores:
            retrieval = InternalClient(name="retrieval", base_url=settings.retrieval_url,
                                       token=token, timeout_s=settings.http_timeout_s)
            profile = InternalClient(name="profile", base_url=settings.profile_url,
                                     token=token, timeout_s=settings.http_timeout_s)
            try:
                yield {"chat": ChatState(settings, stores, retrieval, profile)}
            finally:
                await retrieval.aclose()
                await profile.aclose()

    def checks(request: Request) -> dict:
        state: ChatState = request.state.chat
        return {**state.stores.checks(), "retrieval": state.retrieval.ping,
                "profile": state.profile.ping}

    app = build_app(settings, title="Lectern chat", lifespan=lifespan, checks=checks)
    app.include_router(router)
    app.include_router(pages.router)
    app.mount("/static", pages.static_files, name="static")
    return app
