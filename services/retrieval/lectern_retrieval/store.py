"""SQL for the retrieval schema: the documents registry, chunk rows and full-text search."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from lectern_common.db import advisory_lock
from lectern_retrieval.chunking import Chunk

# The SQL below names the schema: no session search_path, which a transaction-mode pooler
# would not keep (lectern_common.db).
SCHEMA = "retrieval"
# An ingest waits this long for the one running (on any replica) before it fails.
INGEST_LOCK_WAIT_S = 300.0

# snake_case names (`my_turtle`, `COLCON_IGNORE`, `canonical_link`): PostgreSQL's parser splits
# them into common words, so they also become terms of their own, as whole as readers type them.
_IDENTIFIER = re.compile(r"\b[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+\b")
HEADING_TF = 3  # a title/heading occurrence counts three times a body one (as weight 'A')
_INSERT_TERMS = f"""INSERT INTO retrieval.chunk_terms (lexeme, chunk_id, chapter_id, tf, length)
           SELECT t.lexeme, c.chunk_id, c.chapter_id,
                  (SELECT sum(CASE w WHEN 'A' THEN {HEADING_TF} ELSE 1 END)
                     FROM unnest(t.weights) w), 0
             FROM retrieval.chunks c, unnest(c.tsv) t
            WHERE c.chapter_id = $1"""  # noqa: S608 (HEADING_TF is a constant)


def identifiers(text: str) -> Counter[str]:
    return Counter(m.lower() for m in _IDENTIFIER.findall(text))


@dataclass(frozen=True)
class DocumentRow:
    chapter_id: str
    source: str
    source_path: str
    title: str
    url: str
    file_hash: str
    content_hash: str
    text: str
    sections: list[dict]
    chunks: list[Chunk]


@asynccontextmanager
async def ingest_lock(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """One ingest at a time across replicas: the registry diff must see a stable index. The lock
    is a transaction of its own on one connection (advisory_lock); the ingest works on a second,
    so its writes commit as they are made, as without the lock."""
    async with (
        pool.acquire() as holder,
        advisory_lock(holder, "retrieval:ingest", wait_s=INGEST_LOCK_WAIT_S),
        pool.acquire() as conn,
    ):
        yield conn


async def document_hashes(conn: asyncpg.Connection, source: str) -> dict[str, tuple[str, str]]:
    """source_path -> (chapter_id, file_hash) for every document of a source."""
    rows = await conn.fetch(
        "SELECT source_path, chapter_id, file_hash FROM retrieval.documents WHERE source = $1",
        source,
    )
    return {r["source_path"]: (r["chapter_id"], r["file_hash"]) for r in rows}


@dataclass(frozen=True)
class StoredChunk:
    chapter_id: str
    title: str  # the document title its passages were embedded under
    passages: int  # its points in Qdrant


async def stored_chunks(conn: asyncpg.Connection, chapter_ids: list[str]) -> dict[str, StoredChunk]:
    rows = await conn.fetch(
        """SELECT chunk_id::text AS chunk_id, chapter_id, title, passages FROM retrieval.chunks
            WHERE chapter_id = ANY($1)""",
        chapter_ids,
    )
    return {r["chunk_id"]: StoredChunk(r["chapter_id"], r["title"], r["passages"]) for r in rows}


async def chapter_ids_taken(
    conn: asyncpg.Connection, chapter_ids: list[str], source: str
) -> list[str]:
    """Chapter ids already used by another source (two sources must not share an id)."""
    rows = await conn.fetch(
        "SELECT chapter_id FROM retrieval.documents WHERE chapter_id = ANY($1) AND source <> $2",
        chapter_ids,
        source,
    )
    return [r["chapter_id"] for r in rows]


async def write_documents(
    conn: asyncpg.Connection, docs: list[DocumentRow], removed: list[str], passages: dict[str, int]
) -> None:
    """Replace the rows of changed documents and drop removed ones, in one transaction."""
    async with conn.transaction():
        if removed:
            await conn.execute(
                "DELETE FROM retrieval.documents WHERE chapter_id = ANY($1)", removed
            )
        for doc in docs:
            await conn.execute(
                """INSERT INTO retrieval.documents (chapter_id, source, source_path, title, url,
                                    file_hash, content_hash, text, sections, chunk_count,
                                    ingested_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now())
                   ON CONFLICT (chapter_id) DO UPDATE SET
                     source = EXCLUDED.source, source_path = EXCLUDED.source_path,
                     title = EXCLUDED.title, url = EXCLUDED.url, file_hash = EXCLUDED.file_hash,
                     content_hash = EXCLUDED.content_hash, text = EXCLUDED.text,
                     sections = EXCLUDED.sections, chunk_count = EXCLUDED.chunk_count,
                     ingested_at = now()""",
                doc.chapter_id,
                doc.source,
                doc.source_path,
                doc.title,
                doc.url,
                doc.file_hash,
                doc.content_hash,
                doc.text,
                doc.sections,
                len(doc.chunks),
            )
            await conn.execute("DELETE FROM retrieval.chunks WHERE chapter_id = $1", doc.chapter_id)
            await conn.copy_records_to_table(
                "chunks",
                schema_name=SCHEMA,
                columns=[
                    "chunk_id",
                    "chapter_id",
                    "ord",
                    "title",
                    "headings",
                    "section",
                    "text",
                    "passages",
                ],
                records=[
                    (
                        c.chunk_id,
                        doc.chapter_id,
                        c.ord,
                        doc.title,
                        " > ".join(c.heading_path),
                        c.section,
                        c.text,
                        passages[c.chunk_id],
                    )
                    for c in doc.chunks
                ],
            )
            await _index_terms(conn, doc.chapter_id, doc.title, doc.chunks)
        await conn.execute(
            """INSERT INTO retrieval.corpus_stats (id, chunks, avgdl)
               SELECT 1, count(*), coalesce(avg(length), 1) FROM retrieval.chunks
               ON CONFLICT (id) DO UPDATE SET chunks = EXCLUDED.chunks, avgdl = EXCLUDED.avgdl"""
        )


async def _index_terms(
    conn: asyncpg.Connection, chapter_id: str, title: str, chunks: list[Chunk]
) -> None:
    """Fill chunk_terms (and chunks.length) for one chapter: the lexemes of each chunk's
    tsvector, plus its identifiers."""
    await conn.execute(_INSERT_TERMS, chapter_id)
    names = []
    for chunk in chunks:
        counts = identifiers(chunk.text)
        for name, n in identifiers(" ".join([title, *chunk.heading_path])).items():
            counts[name] += HEADING_TF * n
        names += [(name, chunk.chunk_id, chapter_id, float(n), 0.0) for name, n in counts.items()]
    if names:
        await conn.copy_records_to_table(
            "chunk_terms",
            schema_name=SCHEMA,
            columns=["lexeme", "chunk_id", "chapter_id", "tf", "length"],
            records=names,
        )
    await conn.execute(
        """WITH l AS (SELECT chunk_id, sum(tf) AS length FROM retrieval.chunk_terms
                       WHERE chapter_id = $1 GROUP BY chunk_id)
           UPDATE retrieval.chunk_terms t SET length = l.length
             FROM l WHERE t.chunk_id = l.chunk_id""",
        chapter_id,
    )
    await conn.execute(
        """UPDATE retrieval.chunks c SET length = coalesce(
               (SELECT sum(tf) FROM retrieval.chunk_terms t WHERE t.chunk_id = c.chunk_id), 0)
            WHERE c.chapter_id = $1""",
        chapter_id,
    )


async def passages_per_chapter(pool: asyncpg.Pool) -> dict[str, int]:
    """Chapter id -> the number of points its chunk rows expect in the index."""
    rows = await pool.fetch(
        """SELECT d.chapter_id, coalesce(sum(c.passages), 0)::int AS passages
             FROM retrieval.documents d LEFT JOIN retrieval.chunks c USING (chapter_id)
            GROUP BY d.chapter_id"""
    )
    return {r["chapter_id"]: r["passages"] for r in rows}


async def forget_file_hashes(pool: asyncpg.Pool, chapter_ids: list[str]) -> None:
    """Make the next ingest of these documents rebuild them (their points do not match)."""
    await pool.execute(
        "UPDATE retrieval.documents SET file_hash = '' WHERE chapter_id = ANY($1)", chapter_ids
    )


async def chunks_by_id(pool: asyncpg.Pool, ids: list[str]) -> dict[str, dict]:
    rows = await pool.fetch(
        """SELECT c.chunk_id::text AS chunk_id, c.chapter_id, d.title, c.section, d.url,
                  d.source_path, c.text
             FROM retrieval.chunks c JOIN retrieval.documents d USING (chapter_id)
            WHERE c.chunk_id = ANY($1::uuid[])""",
        ids,
    )
    return {r["chunk_id"]: dict(r) for r in rows}


async def lexical(
    pool: asyncpg.Pool,
    query: str,
    *,
    limit: int,
    chapter_id: str | None,
    k1: float = 1.2,
    b: float = 0.75,
) -> list[tuple[str, float]]:
    """BM25 over the chunk terms; the query goes through the same text-search parser as the
    chunks (stemming, stop words), so no user input reaches tsquery syntax, and its
    identifiers are looked up whole."""
    rows = await pool.fetch(
        """WITH q AS (SELECT lexeme FROM unnest(to_tsvector('english', $1))
                      UNION SELECT unnest($6::text[])),
                df AS MATERIALIZED (SELECT q.lexeme, (SELECT count(*) FROM retrieval.chunk_terms t
                                          WHERE t.lexeme = q.lexeme)::real AS df FROM q)
           SELECT p.chunk_id::text AS chunk_id,
                  sum(ln(1 + (s.chunks - df.df + 0.5) / (df.df + 0.5)) * p.tf * ($4 + 1)
                      / (p.tf + $4 * (1 - $5 + $5 * p.length / greatest(s.avgdl, 1)))) AS score
             FROM df CROSS JOIN retrieval.corpus_stats s
             JOIN LATERAL (SELECT t.chunk_id, t.tf, t.length FROM retrieval.chunk_terms t
                            WHERE t.lexeme = df.lexeme
                              AND ($3::text IS NULL OR t.chapter_id = $3)) p ON true
            WHERE df.df > 0
            GROUP BY p.chunk_id
            ORDER BY score DESC LIMIT $2""",
        query,
        limit,
        chapter_id,
        k1,
        b,
        list(identifiers(query)),
    )
    return [(r["chunk_id"], float(r["score"])) for r in rows]


async def list_chapters(pool: asyncpg.Pool) -> list[dict]:
    rows = await pool.fetch(
        "SELECT chapter_id AS id, title, url, source_path FROM retrieval.documents"
        " ORDER BY source, source_path"
    )
    return [dict(r) for r in rows]


async def get_chapter(pool: asyncpg.Pool, chapter_id: str) -> dict | None:
    row = await pool.fetchrow(
        """SELECT chapter_id AS id, title, url, source_path, source, content_hash, text, sections
             FROM retrieval.documents WHERE chapter_id = $1""",
        chapter_id,
    )
    return dict(row) if row else None


async def chapter_exists(pool: asyncpg.Pool, chapter_id: str) -> bool:
    return bool(
        await pool.fetchval("SELECT 1 FROM retrieval.documents WHERE chapter_id = $1", chapter_id)
    )


# Whether the book mentions a query token at all: an identifier whole (as `identifiers` stores
# it), any other token by its lexemes (all of them, through the same parser as the chunks).
# One index probe per lexeme on chunk_terms' primary key; a stop word has no lexeme (NULL).
_PRESENT = """SELECT q.tok, (SELECT bool_and(EXISTS (SELECT 1 FROM retrieval.chunk_terms t
                                                     WHERE t.lexeme = l))
                          FROM unnest(CASE WHEN q.tok LIKE '%\\_%' THEN ARRAY[lower(q.tok)]
                                      ELSE tsvector_to_array(to_tsvector('english', q.tok))
                                      END) l) AS present
                FROM unnest($1::text[]) q(tok)"""


async def terms_present(
    db: asyncpg.Pool | asyncpg.Connection, tokens: list[str]
) -> dict[str, bool]:
    """Lowercase token -> whether any chunk has it; stop words are left out."""
    if not tokens:
        return {}
    rows = await db.fetch(_PRESENT, tokens)
    return {r["tok"].lower(): r["present"] for r in rows if r["present"] is not None}
