"""The chat service's app factory and lifespan."""

from __future__ import annotations

from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path

from fastapi import FastAPI

from lectern_chat import admin, pages
from lectern_chat.api import internal_router, router
from lectern_chat.budget import TokenBudget
from lectern_chat.events import EventLog
from lectern_chat.lifetimes import Answers
from lectern_chat.pipeline import Pipeline
from lectern_chat.settings import ChatSettings
from lectern_chat.slots import StreamSlots
from lectern_chat.state import ChatState
from lectern_chat.upstream import KnownChapters
from lectern_common.app import build_app
from lectern_common.gemini import GeminiConfig, open_gemini
from lectern_common.http import open_internal_client
from lectern_common.redis import Keys
from lectern_common.stores import open_postgres, open_redis
from lectern_common.tasks import BackgroundTasks

MIGRATIONS = Path(__file__).parent / "migrations"
# At shutdown the running answers are cancelled and get this long to store what they have.
SHUTDOWN_S = 10.0
# The chapter ids a question may name: a new chapter is seen within a second of its ingest,
# a question about an unknown one waits at most this long for retrieval to say so.
CHAPTERS_TTL_S, CHAPTERS_RECHECK_S, CHAPTERS_TIMEOUT_S = 30.0, 1.0, 2.0


def gemini_config(settings: ChatSettings) -> GeminiConfig | None:
    """The model client's config, or None without an API key (the extractive answerer)."""
    if not settings.gemini_enabled:
        return None
    return settings.gemini_config(max_output_tokens=settings.max_output_tokens)


def create_app(settings: ChatSettings | None = None) -> FastAPI:
    settings = settings or ChatSettings()

    async def open_state(stack: AsyncExitStack) -> ChatState:
        pool = await stack.enter_async_context(
            open_postgres(settings, schema="chat", migrations=MIGRATIONS)
        )
        redis = await stack.enter_async_context(
            open_redis(
                settings,
                max_connections=settings.redis_max_connections,
                min_connections=settings.redis_min_connections,
            )
        )
        retrieval = await stack.enter_async_context(
            open_internal_client(
                settings,
                name="retrieval",
                base_url=settings.retrieval_url,
                timeout_s=settings.retrieval_timeout_s,
            )
        )
        profile = await stack.enter_async_context(
            open_internal_client(
                settings,
                name="profile",
                base_url=settings.profile_url,
                timeout_s=settings.profile_timeout_s,
            )
        )
        gemini = await stack.enter_async_context(open_gemini(gemini_config(settings)))
        tasks = BackgroundTasks("chat")
        # Drained first, while the stores and clients the answers use are still open.
        stack.push_async_callback(partial(tasks.drain, timeout_s=SHUTDOWN_S, cancel=True))
        keys = Keys(settings.redis_prefix)
        events = EventLog(
            redis,
            keys,
            ttl_s=settings.replay_ttl_s,
            done_ttl_s=settings.replay_done_ttl_s,
            producer_ttl_s=settings.heartbeat_ttl_s,
            tasks=tasks,
        )
        slots = StreamSlots(
            redis,
            keys,
            per_owner=settings.max_open_streams,
            per_address=settings.max_open_streams_per_address,
            ttl_s=settings.heartbeat_ttl_s,
        )
        pipeline = Pipeline(
            settings=settings,
            pool=pool,
            retrieval=retrieval,
            profile=profile,
            gemini=gemini,
            budget=TokenBudget(redis, keys, daily_tokens=settings.daily_token_budget),
        )
        answers = Answers(
            settings=settings,
            pool=pool,
            pipeline=pipeline,
            events=events,
            slots=slots,
            tasks=tasks,
        )
        tasks.spawn(answers.sweep_forever(), name="chat.sweeper")
        return ChatState(
            settings=settings,
            pool=pool,
            redis=redis,
            retrieval=retrieval,
            profile=profile,
            events=events,
            slots=slots,
            answers=answers,
            chapters=KnownChapters(
                retrieval,
                ttl_s=CHAPTERS_TTL_S,
                recheck_s=CHAPTERS_RECHECK_S,
                timeout_s=min(CHAPTERS_TIMEOUT_S, settings.retrieval_timeout_s),
            ),
        )

    app = build_app(settings, title="Lectern chat", open_state=open_state)
    app.include_router(router)
    app.include_router(internal_router)
    app.include_router(admin.router)
    pages.mount_reader_page(app, settings.web_dir)
    return app
