"""The chat service's typed state, opened by the lifespan and handed to routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from lectern_chat.events import EventLog
from lectern_chat.orchestrator import Orchestrator
from lectern_chat.settings import ChatSettings
from lectern_common.gemini import Gemini
from lectern_common.http import InternalClient
from lectern_common.stores import Stores


@dataclass
class ChatState:
    settings: ChatSettings
    stores: Stores
    retrieval: InternalClient
    profile: InternalClient
    gemini: Gemini | None
    events: EventLog
    orchestrator: Orchestrator


async def chat_state(request: Request) -> ChatState:
    return request.state.chat


State = Annotated[ChatState, Depends(chat_state)]
