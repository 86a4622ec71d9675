"""asyncpg pool per service, pinned to the service's own schema, and ordered SQL migrations
applied at start-up under an advisory lock (two replicas starting together cannot race)."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import orjson
import structlog

log = structlog.get_logger()

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(
            kind,
            schema="pg_catalog",
            format="text",
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
        )


async def create_pool(
    dsn: str, *, schema: str, min_size: int = 1, max_size: int = 10, extra_search_path: str = ""
) -> asyncpg.Pool:
    schema = _identifier(schema)
    search_path = f"{schema},{extra_search_path}" if extra_search_path else schema
    async with _connect(dsn) as conn:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        command_timeout=30,
        server_settings={"search_path": search_path, "application_name": f"lectern-{schema}"},
    )


class _connect:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    async def __aenter__(self) -> asyncpg.Connection:
        self.conn = await asyncpg.connect(self.dsn, timeout=10)
        return self.conn

    async def __aexit__(self, *exc: object) -> None:
        await self.conn.close()


def _lock_key(name: str) -> int:
    return int.from_bytes(
        hashlib.sha256(f"lectern:{name}".encode()).digest()[:8], "big", signed=True
    )


@asynccontextmanager
async def advisory_lock(conn: asyncpg.Connection, name: str) -> AsyncIterator[None]:
    """Hold a session-level advisory lock named `name` (one holder across all replicas)."""
    key = _lock_key(name)
    await conn.execute("SELECT pg_advisory_lock($1)", key)
    try:
        yield
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", key)


def _identifier(name: str) -> str:
    # Schema names are ours (a service's constant), never a client's; still, refuse anything odd
    # before it is put into SQL text.
    if not _IDENTIFIER.match(name):
        raise ValueError(f"invalid schema name: {name!r}")
    return name


def _migration_files(folder: Path) -> list[tuple[str, str]]:
    return [(p.name, p.read_text()) for p in sorted(folder.glob("*.sql"))]


async def migrate(pool: asyncpg.Pool, *, schema: str, folder: Path) -> list[str]:
    """Apply `folder/NNN_name.sql` files not yet recorded in `<schema>.schema_migrations`."""
    schema = _identifier(schema)
    files = await asyncio.to_thread(_migration_files, folder)
    applied_now: list[str] = []
    async with pool.acquire() as conn:
        async with advisory_lock(conn, f"migrate:{schema}"):
            await conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations ('
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {
                r["name"]
                for r in await conn.fetch(f'SELECT name FROM "{schema}".schema_migrations')  # noqa: S608 (checked name)
            }
            for name, sql in files:
                if name in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute(
                        f'INSERT INTO "{schema}".schema_migrations (name) VALUES ($1)',  # noqa: S608
                        name,
                    )
                applied_now.append(name)
                log.info("db.migration_applied", schema=schema, migration=name)
    return applied_now


async def ping(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
