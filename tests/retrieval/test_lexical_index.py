"""The in-memory BM25 leg gives what the SQL it replaced gives: the same chunks in the same
order with the same scores, with and without a chapter filter, and the same verdict on which
query terms the book mentions; and it sees an ingest's change at the next search. Against the
main stack's database with the sample book ingested."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from lectern_dev.harness.books import ingest_book
from lectern_dev.stack import Stack
from lectern_retrieval import store
from lectern_retrieval.lexical import LexicalIndex

QUESTIONS = [
    "How do I bridge Gazebo topics to ROS 2?",
    "What does an IMU measure on a walking humanoid?",
    "ros2 launch file with parameters",
    "What is the difference between a topic and a service?",
    "How are links and joints described in URDF?",
    "use_sim_time simulated clock",
    "PID controller tuning for balance",
    "the of and",  # only stop words
    "zyxwvu qqqq",  # words the book never uses
]


@pytest.fixture(scope="module")
def book(stack: Stack) -> dict:
    return ingest_book(stack)


@pytest.fixture
async def pool(stack: Stack, book: dict) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(
        stack.database_url, min_size=1, max_size=4, server_settings={"search_path": "retrieval"}
    )
    assert pool is not None
    yield pool
    await pool.close()


def same(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> bool:
    """The same scores in the same order (to float rounding) and the same chunks at each
    score, but for ties at the cut-off (either of two equal chunks may be the last one in)."""
    if len(got) != len(want):
        return False
    if not all(abs(g[1] - w[1]) < 1e-6 * max(1.0, w[1]) for g, w in zip(got, want, strict=True)):
        return False
    cut = want[-1][1] + 1e-6 if want else 0.0

    def by_score(ranked: list[tuple[str, float]]) -> dict[float, set[str]]:
        out: dict[float, set[str]] = {}
        for chunk, score in ranked:
            if score > cut:
                out.setdefault(round(score, 4), set()).add(chunk)
        return out

    return by_score(got) == by_score(want)


async def test_memory_bm25_matches_the_sql(pool: asyncpg.Pool) -> None:
    index = LexicalIndex(pool)
    chapters = [r["chapter_id"] for r in await pool.fetch("SELECT chapter_id FROM documents")]
    assert chapters
    for question in QUESTIONS:
        tokens = [t for t in question.split() if len(t) > 1]
        asked = await index.tokens(question, tokens)
        snapshot = await index.current(asked.generation)
        for chapter in (None, *chapters[:3]):
            want = await store.lexical(pool, question, limit=20, chapter_id=chapter)
            got = index.search(snapshot, asked.lexemes, limit=20, chapter_id=chapter)
            assert same(got, want), (question, chapter, got[:3], want[:3])
        assert index.present(snapshot, asked) == await store.terms_present(pool, tokens)
    assert index.search(snapshot, ["ros"], limit=5, chapter_id="no--such-chapter") == []


async def test_a_change_to_the_terms_is_seen_by_the_next_search(pool: asyncpg.Pool) -> None:
    index = LexicalIndex(pool)
    asked = await index.tokens("quokkafish", ["quokkafish"])
    snapshot = await index.current(asked.generation)
    assert index.search(snapshot, asked.lexemes, limit=5, chapter_id=None) == []
    chunk = await pool.fetchrow("SELECT chunk_id, chapter_id, length FROM chunks LIMIT 1")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO chunk_terms (lexeme, chunk_id, chapter_id, tf, length)"
            " VALUES ('quokkafish', $1, $2, 1, $3)",
            chunk["chunk_id"],
            chunk["chapter_id"],
            chunk["length"],
        )
    try:
        # Many searches at once load the new terms once.
        async def search() -> list[tuple[str, float]]:
            asked = await index.tokens("quokkafish", ["quokkafish"])
            snapshot = await index.current(asked.generation)
            return index.search(snapshot, asked.lexemes, limit=5, chapter_id=None)

        found = await asyncio.gather(*(search() for _ in range(10)))
        assert all(f and f[0][0] == str(chunk["chunk_id"]) for f in found)
    finally:
        await pool.execute("DELETE FROM chunk_terms WHERE lexeme = 'quokkafish'")
    asked = await index.tokens("quokkafish", ["quokkafish"])
    snapshot = await index.current(asked.generation)
    assert index.search(snapshot, asked.lexemes, limit=5, chapter_id=None) == []
