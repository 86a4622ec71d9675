"""The chat service's app factory and lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path

from fastapi import FastAPI, Request
from starlette.middleware import Middleware

from lectern_chat import pages
from lectern_chat.api import internal_router, router
from lectern_chat.events import EventLog
from lectern_chat.lifetimes import Answers
from lectern_chat.limits import BodyLimitMiddleware
from lectern_chat.pipeline import Pipeline
from lectern_chat.settings import ChatSettings
from lectern_chat.slots import StreamSlots
from lectern_chat.state import ChatState
from lectern_common.app import build_app
from lectern_common.gemini import Gemini
from lectern_common.health import Check
from lectern_common.http import InternalClient
from lectern_common.redis import Keys
from lectern_common.stores import open_postgres, open_redis, postgres_check, redis_check
from lectern_common.tasks import BackgroundTasks

MIGRATIONS = Path(__file__).parent / "migrations"
# At shutdown the running answers are cancelled and get this long to store what they have.
SHUTDOWN_S = 10.0


def gemini_client(settings: ChatSettings) -> Gemini | None:
    """The model client, or None without an API key (the extractive answerer is used)."""
    if not settings.gemini_enabled:
        return None
    return Gemini(settings.gemini_config(max_output_tokens=settings.max_output_tokens))


def create_app(settings: ChatSettings | None = None) -> FastAPI:
    settings = settings or ChatSettings()
    token = settings.internal_token.get_secret_value()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict]:
        async with AsyncExitStack() as stack:
            pool = await stack.enter_async_context(
                open_postgres(settings, schema="chat", migrations=MIGRATIONS)
            )
            redis = await stack.enter_async_context(
                open_redis(settings, max_connections=settings.redis_max_connections)
            )
            retrieval = InternalClient(
                name="retrieval",
                base_url=settings.retrieval_url,
                token=token,
                timeout_s=settings.retrieval_timeout_s,
            )
            stack.push_async_callback(retrieval.aclose)
            profile = InternalClient(
                name="profile",
                base_url=settings.profile_url,
                token=token,
                timeout_s=settings.profile_timeout_s,
            )
            stack.push_async_callback(profile.aclose)
            gemini = gemini_client(settings)
            if gemini is not None:
                stack.push_async_callback(gemini.aclose)
            tasks = BackgroundTasks("chat")
            # Drained first, while the stores and clients the answers use are still open.
            stack.push_async_callback(partial(tasks.drain, timeout_s=SHUTDOWN_S, cancel=True))
            keys = Keys(settings.redis_prefix)
            events = EventLog(
                redis,
                keys,
                ttl_s=settings.replay_ttl_s,
                producer_ttl_s=settings.heartbeat_ttl_s,
                tasks=tasks,
            )
            slots = StreamSlots(
                redis,
                keys,
                per_owner=settings.max_open_streams,
                per_address=settings.max_open_streams_per_address,
                ttl_s=settings.stream_max_s,
            )
            pipeline = Pipeline(
                settings=settings, pool=pool, retrieval=retrieval, profile=profile, gemini=gemini
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
            yield {
                "chat": ChatState(
                    settings=settings,
                    pool=pool,
                    redis=redis,
                    retrieval=retrieval,
                    profile=profile,
                    events=events,
                    slots=slots,
                    answers=answers,
                )
            }

    def checks(request: Request) -> dict[str, Check]:
        state: ChatState = request.state.chat
        return {
            "postgres": postgres_check(state.pool),
            "redis": redis_check(state.redis),
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
