"""asyncpg pool per service and ordered SQL migrations applied at start-up under an advisory
lock (two replicas starting together cannot race).

Everything here works the same on a direct connection and through PgBouncer in transaction mode
(Neon's pooled URL), where consecutive statements may run on different server connections:
the services' SQL names its schema (no session `search_path`), locks are transaction-scoped
(`pg_advisory_xact_lock`, held by an open transaction, which pins one server connection), and
on a pooled URL asyncpg keeps no named prepared statements (`statement_cache_size=0`)."""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import asyncpg
import orjson
import structlog

log = structlog.get_logger()
T = TypeVar("T")

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# How long a replica waits for another's migrations (or ingest) before it gives up.
LOCK_WAIT_S = 120.0


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
    dsn: str,
    *,
    schema: str,
    pooled: bool,
    min_size: int = 1,
    max_size: int = 10,
    idle_s: float = 60.0,
) -> asyncpg.Pool:
    """The service's pool. `pooled`: `dsn` goes through a transaction-mode pooler, where a named
    prepared statement may be missing (or another client's) on the next server connection."""
    schema = _identifier(schema)
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        # A connection opened for a burst is closed after this long unused, so a quiet service
        # holds min_size, not the burst's peak, of the server's (or pooler's) connections.
        max_inactive_connection_lifetime=idle_s,
        init=_init_connection,
        command_timeout=30,
        # Unnamed statements only: PgBouncer before 1.21 (Debian's 1.18) cannot track names.
        statement_cache_size=0 if pooled else 100,
        # application_name is one of the few startup parameters PgBouncer passes on; it would
        # refuse search_path (and Neon's pooler refuses it in `options`).
        server_settings={"application_name": f"lectern-{schema}"},
    )


def is_pooled_url(dsn: str) -> bool:
    """Whether `dsn` looks like Neon's pooled endpoint (`ep-…-pooler.<region>…`)."""
    host = urlsplit(dsn).hostname or ""
    return host.split(".", 1)[0].endswith("-pooler")


def _lock_key(name: str) -> int:
    return int.from_bytes(
        hashlib.sha256(f"lectern:{name}".encode()).digest()[:8], "big", signed=True
    )


@asynccontextmanager
async def advisory_lock(
    conn: asyncpg.Connection, name: str, *, wait_s: float = LOCK_WAIT_S
) -> AsyncIterator[None]:
    """Hold the advisory lock named `name` (one holder across all replicas) for the body, inside
    a transaction on `conn`: the lock ends with it, on the server connection that took it, also
    through a transaction-mode pooler (a session lock there is released, or kept, on whichever
    server connection the unlock lands on). Statements on `conn` in the body run in that
    transaction; work on other connections is serialised by it all the same.

    A waiter does not block inside a transaction: through a pooler that would pin a server
    connection per waiter, and a holder needing a second one could wait forever. It tries,
    gives its transaction back and tries again (50 ms doubling to 1 s); TimeoutError after
    `wait_s`."""
    key = _lock_key(name)
    deadline = time.monotonic() + wait_s
    delay = 0.05
    while True:
        tx = conn.transaction()
        await tx.start()
        try:
            taken = await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", key)
        except BaseException:
            await tx.rollback()
            raise
        if taken:
            break
        await tx.rollback()
        if time.monotonic() >= deadline:
            raise TimeoutError(f"advisory lock {name} still held after {wait_s:.0f} s")
        await asyncio.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 1.0)
    try:
        yield
    except BaseException:
        await tx.rollback()
        raise
    await tx.commit()


def _identifier(name: str) -> str:
    # Schema names are ours (a service's constant), never a client's; still, refuse anything odd
    # before it is put into SQL text.
    if not _IDENTIFIER.match(name):
        raise ValueError(f"invalid schema name: {name!r}")
    return name


def _migration_files(folder: Path) -> list[tuple[str, str]]:
    return [(p.name, p.read_text()) for p in sorted(folder.glob("*.sql"))]


async def migrate(pool: asyncpg.Pool, *, schema: str, folder: Path) -> list[str]:
    """Create `schema` and apply `folder/NNN_name.sql` files not yet recorded in
    `<schema>.schema_migrations`, all in one transaction under the schema's lock (a replica
    that waited finds them applied). A file's unqualified names are the schema's."""
    schema = _identifier(schema)
    files = await asyncio.to_thread(_migration_files, folder)
    applied_now: list[str] = []
    async with pool.acquire() as conn, advisory_lock(conn, f"migrate:{schema}"):
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
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
            # SET LOCAL ends with the transaction: nothing leaks to the next user of the
            # server connection.
            await conn.execute(f'SET LOCAL search_path TO "{schema}"')
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


# What a call on the pool raises when the database is away or the connection under it was lost
# (a restart, a failover, a connection the server dropped): a new connection may well succeed a
# moment later. asyncpg lets a refused or reset socket out as the OS error it is, and a
# connection the loss left mid-protocol raises InternalClientError ("another operation is in
# progress"). The one list: errors.DEPENDENCY_ERRORS answers these with a retryable 503.
LOST_CONNECTION: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,  # ConnectionDoesNotExistError among them
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    ConnectionError,  # refused, reset, aborted, broken pipe
)


async def retry_lost_connection(
    call: Callable[[], Awaitable[T]], *, what: str, within_s: float = 5.0
) -> T:
    """`call()`, again after a lost connection (backing off 0.1 s, doubling to 1 s) until
    `within_s` has passed, then its error. Only for a call that may run twice: the first try
    may have committed before its answer was lost (an UPDATE by id, a read)."""
    deadline = time.monotonic() + within_s
    delay = 0.1
    while True:
        try:
            return await call()
        except LOST_CONNECTION as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("db.retry", what=what, error_type=type(exc).__name__, delay_s=delay)
            await asyncio.sleep(delay)
            delay = min(2 * delay, 1.0)
