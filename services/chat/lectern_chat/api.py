"""HTTP routes of the chat service: the answer stream and its resume, conversations, feedback,
claiming a guest's conversations, and the internal clean-up route for the profile service."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated
from uuid import UUID

from asyncpg import Record
from fastapi import APIRouter, Depends, Header, Path, Query, Response
from fastapi.responses import StreamingResponse

from lectern_chat import owners, questions, slots, store
from lectern_chat.events import Event
from lectern_chat.owners import Owner
from lectern_chat.schemas import (
    ClaimOut,
    ConversationList,
    ConversationOut,
    ConversationSummary,
    FeedbackIn,
    FeedbackOut,
    MessageOut,
    StreamRequest,
)
from lectern_chat.state import State
from lectern_common import metrics
from lectern_common.contracts import USER_ID_PATTERN, ConversationsDeleted
from lectern_common.errors import ApiError, NotFound, dependency_error
from lectern_common.identity import OptionalReader, Reader
from lectern_common.sse import KEEPALIVE, event_frame, sse_response

router = APIRouter(prefix="/api/chat", tags=["chat"])
internal_router = APIRouter(prefix="/internal", include_in_schema=False)

GuestToken = Annotated[str | None, Header(alias="X-Guest-Token", include_in_schema=False)]
# Set by the gateway's forwardAuth answer (which it strips from what a client sends).
RateKey = Annotated[str | None, Header(alias="X-Rate-Key", include_in_schema=False)]


async def current_owner(
    state: State, user_id: OptionalReader, guest_token: GuestToken = None
) -> Owner | None:
    return await owners.resolve(state.pool, user_id=user_id, guest_token=guest_token)


MaybeOwner = Annotated[Owner | None, Depends(current_owner)]


async def owned_conversation(conversation_id: UUID, state: State, owner: MaybeOwner) -> Record:
    """The conversation if this owner has it; 404 otherwise (never says whose it is). A guest
    without a token owns nothing."""
    found = owner and await store.get_conversation(state.pool, conversation_id, owner.key)
    if not found:
        raise NotFound("conversation")
    return found


async def owned_answer(message_id: UUID, state: State, owner: MaybeOwner) -> Record:
    found = owner and await store.owned_message(state.pool, message_id, owner.key)
    if not found or found["role"] != "assistant":
        raise NotFound("message")
    return found


async def last_event_id(
    last_event: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    after: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
) -> int:
    """Where a resumed stream starts: the Last-Event-ID header, or `?after=` for clients that
    cannot set headers; 0 replays everything."""
    if last_event is None:
        return after or 0
    if not re.fullmatch(r"\d{1,7}", last_event.strip()):
        raise ApiError(422, "validation_error", "Last-Event-ID must be an event id (a number)")
    return int(last_event)


def event_stream(
    batches: AsyncIterator[list[Event]], *, guest_token: str | None = None
) -> StreamingResponse:
    """The answer's events as SSE, each batch in one write (an empty one: a keep-alive)."""

    def frame(event: Event) -> bytes:
        data = event.data
        if guest_token and event.name == "meta":
            # The token is only ever in this one response: the replay log stays free of it.
            data = {**data, "guest_token": guest_token}
        return event_frame(event.id, event.name, data)

    async def frames() -> AsyncIterator[bytes]:
        last = 0
        metrics.CHAT_OPEN_STREAMS.inc()
        try:
            async for batch in batches:
                if batch:
                    last = batch[-1].id
                yield b"".join(map(frame, batch)) if batch else KEEPALIVE
        except Exception as exc:
            # The status (200) is already sent: a store that went away ends the stream with
            # an error the client may retry, anything else with the server's usual failure.
            if (unavailable := dependency_error(exc)) is None:
                raise
            yield event_frame(last + 1, "error", unavailable.event_data())
        finally:
            metrics.CHAT_OPEN_STREAMS.dec()

    return sse_response(frames())


@router.post(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_answer(
    body: StreamRequest, state: State, owner: MaybeOwner, rate_key: RateKey = None
) -> StreamingResponse:
    """Ask a question; the answer streams back as `meta`, `sources`, `token`*, `done`|`error`."""
    try:
        asked = await questions.ask(
            body,
            owner,
            pool=state.pool,
            settings=state.settings,
            slots=state.slots,
            answers=state.answers,
            chapters=state.chapters,
            address=slots.guest_address(rate_key),
        )
    except questions.ConversationNotFound:
        raise NotFound("conversation") from None
    except questions.ChapterNotFound:
        raise ApiError(404, "chapter_not_found", "the book has no such chapter") from None
    except questions.TooManyStreams:
        raise ApiError(
            429,
            "too_many_streams",
            "too many answers streaming at once; wait for one to finish",
            headers={"Retry-After": "5"},
        ) from None
    except store.ConversationBusy:
        raise ApiError(
            409, "conversation_busy", "an answer in this conversation is still streaming"
        ) from None
    return event_stream(asked.events, guest_token=asked.guest_token)


@router.get(
    "/messages/{message_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def resume_answer(
    message_id: UUID,
    state: State,
    _: Annotated[Record, Depends(owned_answer)],
    after: Annotated[int, Depends(last_event_id)],
) -> StreamingResponse:
    """The events of an answer after `Last-Event-ID`, live if it is still being written
    (by any worker), from the replay log otherwise; one whose worker died ends with
    `stream_lost`."""
    if not await state.events.exists(message_id):
        raise ApiError(
            410,
            "replay_expired",
            "this answer's events are no longer kept; read the conversation instead",
        )
    return event_stream(state.answers.resume(message_id, after=after))


@router.get("/conversations")
async def list_conversations(
    state: State, owner: MaybeOwner, limit: Annotated[int, Query(ge=1, le=100)] = 50
) -> ConversationList:
    """The owner's conversations, most recently active first."""
    if owner is None:
        return ConversationList(conversations=[])
    rows = await store.list_conversations(state.pool, owner.key, limit)
    return ConversationList(conversations=[ConversationSummary(**dict(r)) for r in rows])


def message_out(row: Record) -> MessageOut:
    data = dict(row)
    data["timings_ms"] = data.pop("timings")
    data["citations"] = list(data["citations"])
    return MessageOut(**data)


@router.get("/conversations/{conversation_id}")
async def get_conversation(
    conversation_id: UUID,
    state: State,
    conversation: Annotated[Record, Depends(owned_conversation)],
) -> ConversationOut:
    rows = await store.conversation_messages(state.pool, conversation_id)
    return ConversationOut(**dict(conversation), messages=[message_out(r) for r in rows])


@router.delete("/conversations/{conversation_id}", status_code=204)
async def delete_conversation(conversation_id: UUID, state: State, owner: MaybeOwner) -> Response:
    """Delete a conversation, its messages and their replay logs."""
    if owner is None:
        raise NotFound("conversation")
    message_ids = await store.delete_conversation(state.pool, conversation_id, owner.key)
    if message_ids is None:
        raise NotFound("conversation")
    await state.events.forget(message_ids)
    return Response(status_code=204)


@router.post("/messages/{message_id}/feedback")
async def give_feedback(
    message_id: UUID, body: FeedbackIn, state: State, _: Annotated[Record, Depends(owned_answer)]
) -> FeedbackOut:
    """Thumbs up or down on an answer (sending again replaces the earlier rating)."""
    await store.set_feedback(state.pool, message_id, rating=body.rating, comment=body.comment)
    return FeedbackOut(message_id=message_id, rating=body.rating, comment=body.comment)


@router.post("/conversations/claim")
async def claim_conversations(
    state: State, reader: Reader, guest_token: Annotated[str, Header(alias="X-Guest-Token")]
) -> ClaimOut:
    """A reader who just signed in takes over the conversations of their guest token; the
    token then stops working, so nobody can claim them again."""
    try:
        token_hash = await owners.guest_token_hash(state.pool, guest_token)
    except ApiError:
        raise NotFound("guest token") from None
    claimed = await store.claim_guest(
        state.pool,
        token_hash,
        user_id=reader,
        owner=owners.reader_owner(reader).key,
        guest_owner=owners.guest_owner(token_hash).key,
    )
    if claimed is None:
        raise NotFound("guest token")
    return ClaimOut(claimed=claimed)


@internal_router.delete("/readers/{user_id}/conversations")
async def delete_reader_conversations(
    state: State, user_id: Annotated[str, Path(pattern=USER_ID_PATTERN)]
) -> ConversationsDeleted:
    """Called by the profile service when a reader deletes their profile."""
    owner = owners.reader_owner(user_id)
    message_ids, deleted = await store.delete_owner_conversations(state.pool, owner.key)
    await state.events.forget(message_ids)
    return ConversationsDeleted(deleted=deleted)
