"""SQL for the generation cache (the `summary.generations` table)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class CacheKey:
    chapter_id: str
    content_hash: str
    kind: str
    audience: str
    model: str
    prompt_version: str

    def params(self) -> tuple[str, ...]:
        return (
            self.chapter_id,
            self.content_hash,
            self.kind,
            self.audience,
            self.model,
            self.prompt_version,
        )


@dataclass(frozen=True)
class Stored:
    body: str
    model: str
    generated_at: datetime


async def touch(pool: asyncpg.Pool, key: CacheKey) -> Stored | None:
    """The cached text for `key`, counting the hit; None when nothing is stored."""
    # A hit count is bookkeeping: committing it without waiting for the WAL flush keeps the
    # disk out of the cached read (a crash may lose the last few counts, never a text).
    row = await pool.fetchrow(
        """WITH async_commit AS (SELECT set_config('synchronous_commit', 'off', true))
           UPDATE summary.generations SET hit_count = hit_count + 1, last_access_at = now()
           FROM async_commit
           WHERE chapter_id = $1 AND content_hash = $2 AND kind = $3 AND audience = $4
             AND model = $5 AND prompt_version = $6
           RETURNING body, model, generated_at""",
        *key.params(),
    )
    return Stored(row["body"], row["model"], row["generated_at"]) if row else None


async def save(pool: asyncpg.Pool, key: CacheKey, body: str, usage: dict) -> Stored:
    """Store a fresh generation and drop the entries made from older texts of the chapter."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            """INSERT INTO summary.generations (chapter_id, content_hash, kind, audience, model,
                                        prompt_version, body, usage)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
               ON CONFLICT (chapter_id, content_hash, kind, audience, model, prompt_version)
               DO UPDATE SET body = EXCLUDED.body, usage = EXCLUDED.usage,
                             generated_at = now()
               RETURNING body, model, generated_at""",
            *key.params(),
            body,
            usage,
        )
        await conn.execute(
            """DELETE FROM summary.generations
               WHERE chapter_id = $1 AND kind = $2 AND audience = $3 AND content_hash <> $4""",
            key.chapter_id,
            key.kind,
            key.audience,
            key.content_hash,
        )
    return Stored(row["body"], row["model"], row["generated_at"])
