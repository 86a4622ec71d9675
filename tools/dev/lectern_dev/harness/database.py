"""A test stack's PostgreSQL from outside the services: fresh databases for each stack, and
plain SQL for the checks and set-ups a test cannot make through an API."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


async def create_database(admin_url: str, name: str | None = None) -> str:
    """Create a fresh database on the server of `admin_url`; return its URL."""
    name = name or f"lectern_test_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_url, name)


async def drop_database(admin_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def run_sql(database_url: str, sql: str, *args: object) -> list[dict]:
    """Run one statement on its own connection; its rows as dicts (none for a write)."""

    async def go() -> list[dict]:
        conn = await asyncpg.connect(database_url)
        try:
            return [dict(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return asyncio.run(go())
