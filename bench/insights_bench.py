"""How long the authors' insights take over a busy month: a throwaway database on DATABASE_URL's
server with the chat schema (its migrations) and 10,000 answers (5,000 not covered, drawn from
500 questions of 8 words out of 3,000; 1,000 rated down; 5,000 with two citation checks), then
`insights.report` and the CSV timed three times (wall time, and the Python CPU time of it).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        uv run --frozen python bench/insights_bench.py
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from lectern_chat import insights
from lectern_dev.harness.database import create_database, drop_database

MIGRATIONS = Path(__file__).parents[1] / "services/chat/lectern_chat/migrations"
ANSWERS = 10_000


def seed_rows() -> tuple[list[tuple], list[tuple]]:
    random.seed(2)
    vocab = [f"w{i}" for i in range(3000)]
    questions = [" ".join(random.sample(vocab, 8)) for _ in range(500)]
    now = datetime.now(UTC)
    conversations, messages = [], []
    for i in range(ANSWERS):
        conversation, at = uuid.uuid4(), now - timedelta(minutes=i)
        conversations.append((conversation, f"user:{i % 700}", "t"))
        covered = i % 2 == 1
        sources = [
            {"n": n, "chapter_id": f"ch-{(i + n) % 12}", "title": f"Chapter {(i + n) % 12}"}
            for n in range(1, 6)
        ]
        checks = [
            {"n": 1, "supported": True, "score": 0.8},
            {"n": 2, "supported": i % 3 == 0, "score": 0.2},
        ]
        question = "What does an IMU measure?" if covered else random.choice(questions)
        messages.append(
            (uuid.uuid4(), conversation, "user", question, None, [], None, None, None, at)
        )
        messages.append(
            (
                uuid.uuid4(),
                conversation,
                "assistant",
                "answer text " * 40,
                json.dumps(sources),
                [1, 2] if covered else [],
                "covered" if covered else "not_covered",
                "down" if i % 10 == 1 else None,
                json.dumps(checks) if covered else None,
                at + timedelta(microseconds=1),
            )
        )
    return conversations, messages


async def main() -> None:
    admin_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    url = await create_database(admin_url)
    try:

        async def init(conn: asyncpg.Connection) -> None:
            await conn.set_type_codec(
                "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
            )

        pool = await asyncpg.create_pool(url, init=init, server_settings={"search_path": "chat"})
        await pool.execute("CREATE SCHEMA chat")
        for migration in sorted(MIGRATIONS.glob("*.sql")):
            await pool.execute(migration.read_text())
        conversations, messages = seed_rows()
        await pool.executemany(
            "INSERT INTO conversations (id, owner, title) VALUES ($1, $2, $3)", conversations
        )
        # The jsonb values are JSON text here: cast, not encoded again by the codec.
        await pool.executemany(
            "INSERT INTO messages (id, conversation_id, role, content, sources, citations,"
            " coverage, feedback, citation_checks, created_at, feedback_at, feedback_comment)"
            " VALUES ($1, $2, $3, $4, coalesce($5::text::jsonb, '[]'), $6, $7, $8::text,"
            " $9::text::jsonb, $10::timestamptz,"
            " CASE WHEN $8::text IS NULL THEN NULL ELSE $10::timestamptz END,"
            " CASE WHEN $8::text IS NULL THEN NULL ELSE 'too vague' END)",
            messages,
        )
        await pool.execute("ANALYZE")
        period = insights.Period.last(30)
        for _ in range(3):
            wall, cpu = time.perf_counter(), time.process_time()
            data = await insights.report(pool, period, key=b"k" * 32, limit=5000, threshold=0.6)
            text = insights.as_csv(data)
            print(
                f"report + csv: {time.perf_counter() - wall:.3f} s wall,"
                f" {time.process_time() - cpu:.3f} s Python CPU;"
                f" {data['uncovered']['questions']} uncovered in"
                f" {len(data['uncovered']['groups'])} groups, {len(data['chapters'])} chapters,"
                f" {len(data['down_rated'])} down-rated, unsupported share"
                f" {data['citations']['share']}, CSV {len(text)} bytes"
            )
        await pool.close()
    finally:
        await drop_database(admin_url, url)


if __name__ == "__main__":
    asyncio.run(main())
