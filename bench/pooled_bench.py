"""What `statement_cache_size=0` (the pooled setting, DATABASE_POOLED) costs: per-query latency
of chat's own queries on a direct connection with asyncpg's statement cache (what services use
on a direct URL) and without it, and without it through a private PgBouncer in transaction
mode. Needs DATABASE_URL (a TCP server); makes and drops a database of its own:

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
      uv run --frozen python bench/pooled_bench.py [--queries 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from pathlib import Path

import asyncpg

from lectern_common import db
from lectern_dev import REPO_ROOT
from lectern_dev.harness.database import create_database, drop_database
from lectern_dev.harness.pgbouncer import PgBouncer

CHAT_MIGRATIONS = Path(REPO_ROOT / "services" / "chat" / "lectern_chat" / "migrations")
QUERIES = {
    "conversation": (
        "SELECT id, title, created_at, updated_at FROM chat.conversations"
        " WHERE id = $1 AND owner = $2"
    ),
    "list": (
        "SELECT c.id, c.title, c.updated_at,"
        " (SELECT count(*) FROM chat.messages m WHERE m.conversation_id = c.id) AS message_count"
        " FROM chat.conversations c WHERE c.owner = $1 ORDER BY c.updated_at DESC LIMIT $2"
    ),
}


async def seed(pool: asyncpg.Pool) -> tuple[uuid.UUID, str]:
    owner = "bench-reader"
    ids = [uuid.uuid4() for _ in range(20)]
    async with pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO chat.conversations (id, owner, title) VALUES ($1, $2, 'bench')",
            [(i, owner) for i in ids],
        )
    return ids[0], owner


async def per_query_us(pool: asyncpg.Pool, name: str, args: tuple, n: int) -> float:
    sql = QUERIES[name]
    async with pool.acquire() as conn:
        for _ in range(200):  # warm-up
            await conn.fetch(sql, *args)
        start = time.perf_counter()
        for _ in range(n):
            await conn.fetch(sql, *args)
        return (time.perf_counter() - start) / n * 1e6


async def main(queries: int, rounds: int) -> None:
    admin = os.environ["DATABASE_URL"]
    url = await create_database(admin)
    bouncer = PgBouncer(admin).start()
    try:
        setup = await db.create_pool(url, schema="chat", pooled=False)
        await db.migrate(setup, schema="chat", folder=CHAT_MIGRATIONS)
        conversation, owner = await seed(setup)
        await setup.close()
        paths = {
            "direct, cache 100": (url, False),
            "direct, cache 0": (url, True),
            "pgbouncer, cache 0": (bouncer.url(url), True),
        }
        pools = {
            label: await db.create_pool(dsn, schema="chat", pooled=pooled, max_size=1)
            for label, (dsn, pooled) in paths.items()
        }
        args = {"conversation": (conversation, owner), "list": (owner, 50)}
        results: dict[tuple[str, str], list[float]] = {}
        for _ in range(rounds):  # the paths take turns, so drift hits all alike
            for label, pool in pools.items():
                for name in QUERIES:
                    us = await per_query_us(pool, name, args[name], queries)
                    results.setdefault((label, name), []).append(us)
        for pool in pools.values():
            await pool.close()
        print(f"{'path':<22}{'query':<14}{'median µs/query':>16}  ({rounds} rounds of {queries})")
        for (label, name), values in results.items():
            print(f"{label:<22}{name:<14}{statistics.median(values):>16.1f}")
    finally:
        bouncer.stop()
        await drop_database(admin, url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    asyncio.run(main(options.queries, options.rounds))
