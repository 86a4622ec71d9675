"""SQL for reader profiles (the `profile` schema)."""

from __future__ import annotations

import asyncpg

from lectern_profile.schemas import FIELDS

COLUMNS = ", ".join(("user_id", *FIELDS, "updated_at"))


async def get(pool: asyncpg.Pool, user_id: str) -> asyncpg.Record | None:
    sql = f"SELECT {COLUMNS} FROM profile.profiles WHERE user_id = $1"  # noqa: S608 (fixed columns)
    return await pool.fetchrow(sql, user_id)


async def upsert(
    pool: asyncpg.Pool, user_id: str, changes: dict[str, str | None]
) -> asyncpg.Record:
    """Insert the profile or change only the given fields; the others keep their value."""
    # Column names come from the FIELDS whitelist only, never from the request.
    names = [name for name in FIELDS if name in changes]
    columns = "".join(f", {name}" for name in names)
    values = "".join(f", ${i}" for i in range(2, len(names) + 2))
    updates = "".join(f"{name} = EXCLUDED.{name}, " for name in names)
    sql = (
        f"INSERT INTO profile.profiles (user_id{columns}) VALUES ($1{values}) "  # noqa: S608
        f"ON CONFLICT (user_id) DO UPDATE SET {updates}updated_at = now() RETURNING {COLUMNS}"
    )
    return await pool.fetchrow(sql, user_id, *(changes[n] for n in names))


async def delete(pool: asyncpg.Pool, user_id: str) -> bool:
    return (
        await pool.fetchval(
            "DELETE FROM profile.profiles WHERE user_id = $1 RETURNING true", user_id
        )
        is not None
    )
