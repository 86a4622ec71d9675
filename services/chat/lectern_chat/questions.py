"""A reader's question taken in: its conversation checked and its history read, a guest made
for a first question without a token, a stream slot taken, the turn stored and its answer
started."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial

import asyncpg

from lectern_chat import owners, store
from lectern_chat.budget import payer
from lectern_chat.events import Event
from lectern_chat.lifetimes import Answers
from lectern_chat.owners import Owner
from lectern_chat.pipeline import Job
from lectern_chat.schemas import StreamRequest
from lectern_chat.settings import ChatSettings
from lectern_chat.slots import StreamSlots
from lectern_chat.store import Turn
from lectern_chat.upstream import KnownChapters
from lectern_common.errors import shutting_down


class ConversationNotFound(Exception):
    """The question names a conversation this owner does not have."""


class ChapterNotFound(Exception):
    """The question is limited to a chapter the book does not have."""


class TooManyStreams(Exception):
    """The owner already has as many answers streaming as they may."""


@dataclass(frozen=True)
class Asked:
    """The answer's events as they come, and the token of a guest made for this question."""

    events: AsyncIterator[list[Event]]
    guest_token: str | None


async def ask(
    question: StreamRequest,
    owner: Owner | None,
    *,
    pool: asyncpg.Pool,
    settings: ChatSettings,
    slots: StreamSlots,
    answers: Answers,
    chapters: KnownChapters,
    address: str | None = None,
) -> Asked:
    """Start answering `question` for `owner` (asking, if a guest, from `address`); raises
    ConversationNotFound, ChapterNotFound, TooManyStreams or store.ConversationBusy (another
    answer of the conversation is still streaming)."""
    started = time.perf_counter()
    if answers.closing:  # SIGTERM: this worker takes no new answer
        raise shutting_down()
    # False only when retrieval says so: while it cannot tell, the answer reports the outage.
    if question.chapter_id is not None and await chapters.has(question.chapter_id) is False:
        raise ChapterNotFound
    guest_token = guest_hash = None
    history: list[tuple[str, str]] = []
    if question.conversation_id is not None:
        # A guest without a token owns nothing; a conversation never says whose it is.
        if owner is None or not await store.get_conversation(
            pool, question.conversation_id, owner.key
        ):
            raise ConversationNotFound
        rows = await store.recent_history(pool, question.conversation_id, settings.history_messages)
        history = [(r["role"], r["content"]) for r in rows]
    if owner is None:  # a guest's first question
        guest_token, guest_hash = owners.new_guest()
        owner = owners.guest_owner(guest_hash)
    slot = await slots.take(owner, address=address)
    if slot is None:
        raise TooManyStreams
    turn = Turn(
        conversation_id=question.conversation_id or uuid.uuid4(),
        user_message_id=uuid.uuid4(),
        assistant_message_id=uuid.uuid4(),
        owner=owner.key,
        message=question.message,
        mode=question.mode,
        selected_text=question.selected_text,
        chapter_id=question.chapter_id,
    )
    job = Job(
        turn=turn,
        owner=owner,
        question=question.message,
        top_k=question.top_k,
        history=history,
        started=started,
        language=question.language,
        payer=payer(owner, address),
    )
    try:
        await _store_turn(
            pool,
            turn,
            new_conversation=question.conversation_id is None,
            settings=settings,
            answers=answers,
            guest_hash=guest_hash,
        )
        events = answers.start(job, slot)
    except BaseException:  # from here on the answer releases the slot when it ends
        await slots.release(slot)
        raise
    return Asked(events=events, guest_token=guest_token)


async def _store_turn(
    pool: asyncpg.Pool,
    turn: Turn,
    *,
    new_conversation: bool,
    settings: ChatSettings,
    answers: Answers,
    guest_hash: bytes | None,
) -> None:
    """Store the turn; when the conversation is busy only with answers whose worker died,
    store those as lost and try once more."""
    start = partial(
        store.start_turn,
        pool,
        turn,
        new_conversation=new_conversation,
        stale_after_s=settings.stream_max_s,
        new_guest_hash=guest_hash,
    )
    try:
        await start()
    except store.ConversationBusy as busy:
        if set(await answers.settle_lost(busy.message_ids)) != set(busy.message_ids):
            raise
        await start()
