"""The chat service's typed state, opened by the lifespan and handed to routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from redis.asyncio import Redis

from lectern_chat.events import EventLog
from lectern_chat.lifetimes import Answers
from lectern_chat.settings import ChatSettings
from lectern_chat.slots import StreamSlots
from lectern_chat.upstream import KnownChapters
from lectern_common.health import Check
from lectern_common.http import InternalClient
from lectern_common.stores import dependency_checks


@dataclass
class ChatState:
    settings: ChatSettings
    pool: asyncpg.Pool
    # The one Redis client: the event logs and the stream slots.
    redis: Redis
    retrieval: InternalClient
    profile: InternalClient
    events: EventLog
    slots: StreamSlots
    answers: Answers
    chapters: KnownChapters

    async def drain(self, deadline: float) -> None:
        await self.answers.drain(deadline)

    def checks(self) -> dict[str, Check]:
        return dependency_checks(
            pool=self.pool, redis=self.redis, clients=(self.retrieval, self.profile)
        )


async def chat_state(request: Request) -> ChatState:
    return request.state.chat


State = Annotated[ChatState, Depends(chat_state)]
