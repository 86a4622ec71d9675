"""The chat service's app factory and lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from redis.asyncio import BlockingConnectionPool, Redis
from starlette.middleware import Middleware

from lectern_chat import pages
from lectern_chat.api import internal_router, router
from lectern_chat.events import EventLog
from lectern_chat.limits import BodyLimitMiddleware
from lectern_chat.orchestrator import Orchestrator
from lectern_chat.settings import ChatSettings
from lectern_chat.state import ChatState
from lectern_common.app import build_app
from lectern_common.gemini import Gemini
from lectern_common.http import InternalClient
from lectern_common.stores import open_stores, require_url

MIGRATIONS = Path(__file__).parent / "migrations"


def gemini_client(settings: ChatSettings) -> Gemini | None:
    """The model client, or None without an API key (the extractive answerer is used)."""
    if not settings.gemini_enabled:
        return None
    return Gemini(settings.gemini_config(max_output_tokens=settings.max_output_tokens))


def event_redis(settings: ChatSettings) -> Redis:
    pool = BlockingConnectionPool.from_url(
        require_url(settings.redis_url, "REDIS_URL"),
        max_connections=settings.redis_max_connections,
        timeout=5,
        socket_timeout=5,
        socket_connect_timeout=5,
        health_check_interval=30,
    )
    return Redis(connection_pool=pool)


def create_app(settings: ChatSettings | None = None) -> FastAPI:
    settings = settings or ChatSettings()
    token = settings.internal_token.get_secret_value()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict]:
        async with open_stores(settings, schema="chat", migrations=MIGRATIONS) as stores:
            retrieval = InternalClient(
                name="retrieval",
                base_url=settings.retrieval_url,
                token=token,
                timeout_s=settings.retrieval_timeout_s,
            )
            profile = InternalClient(
                name="profile",
                base_url=settings.profile_url,
                token=token,
                timeout_s=settings.profile_timeout_s,
            )
            gemini = gemini_client(settings)
            redis = event_redis(settings)
            events = EventLog(redis, stores.keys, ttl_s=settings.replay_ttl_s)
            orchestrator = Orchestrator(
                settings=settings,
                stores=stores,
                redis=redis,
                events=events,
                retrieval=retrieval,
                profile=profile,
                gemini=gemini,
            )
            sweeper = asyncio.create_task(orchestrator.sweep_forever())
            try:
                yield {
                    "chat": ChatState(
                        settings, stores, retrieval, profile, gemini, events, orchestrator
                    )
                }
            finally:
                sweeper.cancel()
                await orchestrator.aclose()
                await redis.aclose()
                if gemini is not None:
                    await gemini.aclose()
                await retrieval.aclose()
                await profile.aclose()

    def checks(request: Request) -> dict:
        state: ChatState = request.state.chat
        return {
            **state.stores.checks(),
            "retrieval": state.retrieval.ping,
            "profile": state.profile.ping,
        }

    app = build_app(settings, title="Lectern chat", lifespan=lifespan, checks=checks)
    # Innermost, so a refused body still gets the request id and the internal-token check.
    app.user_middleware.append(Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes))
    app.include_router(router)
    app.include_router(internal_router)
    pages.mount_reader_page(app, settings.web_dir)
    return app
