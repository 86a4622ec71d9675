"""SQL for the chat schema: guests, conversations, messages and feedback (asyncpg)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

MESSAGE_COLUMNS = """m.id, m.role, m.content, m.mode, m.selected_text, m.chapter_id, m.query,
    m.sources, m.citations, m.status, m.finish_reason, m.error, m.timings, m.usage, m.model,
    m.language, m.feedback, m.feedback_comment, m.created_at, m.completed_at, m.citation_checks,
    m.fallback"""


@dataclass(frozen=True)
class Turn:
    """What is stored when a question arrives: the question and an answer that is streaming."""

    conversation_id: UUID
    user_message_id: UUID
    assistant_message_id: UUID
    owner: str
    message: str
    mode: str
    selected_text: str | None
    chapter_id: str | None


class ConversationBusy(Exception):
    """Another answer of this conversation is still streaming: `message_ids` (which may have
    lost their worker: lifetimes.Answers.settle_lost)."""

    def __init__(self, message_ids: list[UUID]) -> None:
        super().__init__("conversation busy")
        self.message_ids = message_ids


# What an answer whose worker died is stored with.
STREAM_LOST = {
    "code": "stream_lost",
    "message": "the answer stopped when its server did; ask again",
    "retryable": True,
}


async def guest_is_active(pool: asyncpg.Pool, token_hash: bytes) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT 1 FROM chat.guests WHERE token_hash = $1 AND claimed_by IS NULL", token_hash
        )
    )


async def get_conversation(
    pool: asyncpg.Pool, conversation_id: UUID, owner: str
) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT id, title, created_at, updated_at FROM chat.conversations"
        " WHERE id = $1 AND owner = $2",
        conversation_id,
        owner,
    )


async def recent_history(
    pool: asyncpg.Pool, conversation_id: UUID, limit: int
) -> list[asyncpg.Record]:
    """The last `limit` messages that have text, oldest first (failed answers are left out)."""
    rows = await pool.fetch(
        "SELECT role, content, created_at FROM chat.messages"
        " WHERE conversation_id = $1 AND content <> '' AND status IN ('complete', 'interrupted')"
        " ORDER BY created_at DESC LIMIT $2",
        conversation_id,
        limit,
    )
    return list(reversed(rows))


# A new conversation is stored in one statement, one round trip: the guest (if new), the
# conversation, the question and the answer that is streaming. A statement is atomic on its
# own, and the messages' foreign key is checked at its end, when the conversation exists.
_START_CONVERSATION = """
WITH guest AS (
    INSERT INTO chat.guests (token_hash) SELECT $9::bytea WHERE $9::bytea IS NOT NULL
), conversation AS (
    INSERT INTO chat.conversations (id, owner, title) VALUES ($1, $2, left($4, 80))
)
INSERT INTO chat.messages (id, conversation_id, role, content, mode, selected_text, chapter_id,
                      status, created_at)
VALUES ($7, $1, 'user', $4, $3, $5, $6, 'complete', clock_timestamp()),
       -- later than the question even within one microsecond: history is read in this order
       ($8, $1, 'assistant', '', $3, NULL, $6, 'streaming',
        clock_timestamp() + interval '1 microsecond')
"""


async def start_turn(
    pool: asyncpg.Pool,
    turn: Turn,
    *,
    new_conversation: bool,
    stale_after_s: int,
    new_guest_hash: bytes | None = None,
) -> None:
    """Store the question and a `streaming` answer (and the guest token of a new guest);
    refuse while another answer of the conversation streams."""
    if new_conversation:
        await pool.execute(
            _START_CONVERSATION,
            turn.conversation_id,
            turn.owner,
            turn.mode,
            turn.message,
            turn.selected_text,
            turn.chapter_id,
            turn.user_message_id,
            turn.assistant_message_id,
            new_guest_hash,
        )
        return
    async with pool.acquire() as conn, conn.transaction():
        if new_guest_hash is not None:
            await conn.execute("INSERT INTO chat.guests (token_hash) VALUES ($1)", new_guest_hash)
        # The row lock serialises two questions sent to one conversation at once.
        await conn.execute(
            "SELECT 1 FROM chat.conversations WHERE id = $1 FOR UPDATE", turn.conversation_id
        )
        busy = await conn.fetch(
            "SELECT id FROM chat.messages WHERE conversation_id = $1 AND status = 'streaming'"
            " AND created_at > now() - make_interval(secs => $2)",
            turn.conversation_id,
            float(stale_after_s),
        )
        if busy:
            raise ConversationBusy([r["id"] for r in busy])
        await conn.execute(
            "UPDATE chat.conversations SET updated_at = now() WHERE id = $1", turn.conversation_id
        )
        await conn.executemany(
            "INSERT INTO chat.messages (id, conversation_id, role, content, mode, selected_text,"
            " chapter_id, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            [
                (
                    turn.user_message_id,
                    turn.conversation_id,
                    "user",
                    turn.message,
                    turn.mode,
                    turn.selected_text,
                    turn.chapter_id,
                    "complete",
                ),
                (
                    turn.assistant_message_id,
                    turn.conversation_id,
                    "assistant",
                    "",
                    turn.mode,
                    None,
                    turn.chapter_id,
                    "streaming",
                ),
            ],
        )


async def finish_message(
    pool: asyncpg.Pool,
    message_id: UUID,
    *,
    content: str,
    status: str,
    finish_reason: str | None,
    query: str | None,
    sources: list[dict],
    citations: list[int],
    error: dict | None,
    timings: dict,
    usage: dict,
    model: str | None,
    citation_checks: list[dict],
    fallback: str | None,
    language: str | None = None,
    coverage: dict | None = None,
) -> None:
    coverage = coverage or {}
    await pool.execute(
        "UPDATE chat.messages SET content = $2, status = $3, finish_reason = $4, query = $5,"
        " sources = $6, citations = $7, error = $8, timings = $9, usage = $10, model = $11,"
        " language = $12, coverage = $13, coverage_score = $14, citation_checks = $15,"
        " fallback = $16, completed_at = now() WHERE id = $1",
        message_id,
        content,
        status,
        finish_reason,
        query,
        sources,
        citations,
        error,
        timings,
        usage,
        model,
        language,
        coverage.get("verdict"),
        coverage.get("score"),
        citation_checks,
        fallback,
    )


async def sweep_dead_answers(pool: asyncpg.Pool, older_than_s: float) -> int:
    """Mark answers still `streaming` after `older_than_s` as failed (`stream_lost`): no answer
    runs that long (lifetimes.py stops it), so their worker died before storing them."""
    result = await pool.execute(
        "UPDATE chat.messages SET status = 'failed', finish_reason = 'stream_lost',"
        " error = $2, completed_at = now()"
        " WHERE status = 'streaming' AND created_at < now() - make_interval(secs => $1)",
        float(older_than_s),
        STREAM_LOST,
    )
    return int(result.split()[-1])


async def streaming_answers(pool: asyncpg.Pool, *, older_than_s: float) -> list[UUID]:
    """The answers marked streaming that started more than `older_than_s` ago (few at any
    time: the partial index on streaming rows)."""
    rows = await pool.fetch(
        "SELECT id FROM chat.messages"
        " WHERE status = 'streaming' AND created_at < now() - make_interval(secs => $1)",
        float(older_than_s),
    )
    return [r["id"] for r in rows]


async def mark_lost(
    pool: asyncpg.Pool, message_ids: list[UUID], *, older_than_s: float
) -> list[UUID]:
    """Store these answers as failed `stream_lost` if they are still streaming and started
    more than `older_than_s` ago; the ids of those changed."""
    rows = await pool.fetch(
        "UPDATE chat.messages SET status = 'failed', finish_reason = 'stream_lost',"
        " error = $2, completed_at = now()"
        " WHERE id = ANY($1::uuid[]) AND status = 'streaming'"
        " AND created_at < now() - make_interval(secs => $3) RETURNING id",
        message_ids,
        STREAM_LOST,
        float(older_than_s),
    )
    return [r["id"] for r in rows]


async def list_conversations(pool: asyncpg.Pool, owner: str, limit: int) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT c.id, c.title, c.created_at, c.updated_at,"
        " (SELECT count(*) FROM chat.messages m WHERE m.conversation_id = c.id) AS message_count"
        " FROM chat.conversations c WHERE c.owner = $1 ORDER BY c.updated_at DESC LIMIT $2",
        owner,
        limit,
    )


async def conversation_messages(pool: asyncpg.Pool, conversation_id: UUID) -> list[asyncpg.Record]:
    return await pool.fetch(
        f"SELECT {MESSAGE_COLUMNS} FROM chat.messages m WHERE m.conversation_id = $1"  # noqa: S608
        " ORDER BY m.created_at",
        conversation_id,
    )


async def delete_conversation(
    pool: asyncpg.Pool, conversation_id: UUID, owner: str
) -> list[UUID] | None:
    """Delete an owned conversation; the ids of its messages, or None when it is not theirs."""
    async with pool.acquire() as conn, conn.transaction():
        message_ids = [
            r["id"]
            for r in await conn.fetch(
                "SELECT m.id FROM chat.messages m"
                " JOIN chat.conversations c ON c.id = m.conversation_id"
                " WHERE c.id = $1 AND c.owner = $2",
                conversation_id,
                owner,
            )
        ]
        deleted = await conn.fetchval(
            "DELETE FROM chat.conversations WHERE id = $1 AND owner = $2 RETURNING 1",
            conversation_id,
            owner,
        )
    return message_ids if deleted else None


async def delete_owner_conversations(pool: asyncpg.Pool, owner: str) -> tuple[list[UUID], int]:
    """Delete all of an owner's conversations: (their message ids, how many conversations)."""
    async with pool.acquire() as conn, conn.transaction():
        message_ids = [
            r["id"]
            for r in await conn.fetch(
                "SELECT m.id FROM chat.messages m"
                " JOIN chat.conversations c ON c.id = m.conversation_id"
                " WHERE c.owner = $1",
                owner,
            )
        ]
        result = await conn.execute("DELETE FROM chat.conversations WHERE owner = $1", owner)
    return message_ids, int(result.split()[-1])


async def owned_message(pool: asyncpg.Pool, message_id: UUID, owner: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT m.id, m.role, m.status, m.conversation_id FROM chat.messages m"
        " JOIN chat.conversations c ON c.id = m.conversation_id"
        " WHERE m.id = $1 AND c.owner = $2",
        message_id,
        owner,
    )


async def set_feedback(
    pool: asyncpg.Pool, message_id: UUID, *, rating: str, comment: str | None
) -> None:
    await pool.execute(
        "UPDATE chat.messages SET feedback = $2, feedback_comment = $3, feedback_at = now()"
        " WHERE id = $1",
        message_id,
        rating,
        comment,
    )


async def claim_guest(
    pool: asyncpg.Pool, token_hash: bytes, *, user_id: str, owner: str, guest_owner: str
) -> int | None:
    """Move an unclaimed guest's conversations to `owner`; None when the token is unknown or
    already claimed (so a token works for exactly one claim)."""
    async with pool.acquire() as conn, conn.transaction():
        claimed = await conn.fetchval(
            "UPDATE chat.guests SET claimed_by = $2, claimed_at = now()"
            " WHERE token_hash = $1 AND claimed_by IS NULL RETURNING 1",
            token_hash,
            user_id,
        )
        if not claimed:
            return None
        result = await conn.execute(
            "UPDATE chat.conversations SET owner = $1 WHERE owner = $2", owner, guest_owner
        )
        return int(result.split()[-1])
