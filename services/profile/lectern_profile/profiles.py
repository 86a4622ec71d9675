"""Reading, changing and deleting a reader's profile (deletion takes their conversations too)."""

from __future__ import annotations

import asyncpg
import structlog
from pydantic import ValidationError

from lectern_common.contracts import ConversationsDeleted, ReaderProfile
from lectern_common.errors import ApiError
from lectern_common.http import InternalClient
from lectern_profile import store
from lectern_profile.schemas import ProfileDeleted
from lectern_profile.segments import segment

log = structlog.get_logger()


class ConversationsNotDeleted(ApiError):
    def __init__(self) -> None:
        super().__init__(
            503,
            "dependency_unavailable",
            "your conversations could not be deleted; nothing was deleted, try again",
        )


def to_profile(record: asyncpg.Record) -> ReaderProfile:
    values = dict(record)
    return ReaderProfile(**values, segment=segment(values))


async def delete_reader(
    *, pool: asyncpg.Pool, chat: InternalClient, user_id: str
) -> ProfileDeleted:
    """Delete the reader's conversations (through chat), then the profile. If chat cannot
    confirm, the profile stays and the reader gets a 503 to retry: no half-deleted reader."""
    response = await chat.request("DELETE", f"/internal/readers/{user_id}/conversations")
    if response.status_code != 200:
        log.warning("profile.delete_conversations_failed", status=response.status_code)
        raise ConversationsNotDeleted
    try:
        conversations = ConversationsDeleted.model_validate_json(response.content).deleted
    except ValidationError as exc:
        log.warning("profile.delete_conversations_invalid", errors=exc.error_count())
        raise ConversationsNotDeleted from exc
    deleted = await store.delete(pool, user_id)
    log.info("profile.deleted", profile_deleted=deleted, conversations_deleted=conversations)
    return ProfileDeleted(profile_deleted=deleted, conversations_deleted=conversations)
