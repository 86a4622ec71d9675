"""The retrieval service's app factory and lifespan.

In embedded mode (no QDRANT_URL) run it with ONE worker: the embedded index allows one writer,
and a second process is refused at start-up with a message saying so.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import asyncpg
import structlog
from fastapi import FastAPI

from lectern_common.app import build_app
from lectern_common.stores import open_postgres
from lectern_common.tasks import BackgroundTasks
from lectern_retrieval import store
from lectern_retrieval.api import router
from lectern_retrieval.deps import RetrievalState
from lectern_retrieval.embeddings import create_embedder
from lectern_retrieval.ingest import Ingestor
from lectern_retrieval.search import Searcher
from lectern_retrieval.settings import RetrievalSettings
from lectern_retrieval.vectors import IndexMeta, VectorStore
from lectern_retrieval.vectors_edge import EdgeVectorStore
from lectern_retrieval.vectors_server import ServerVectorStore

MIGRATIONS = Path(__file__).parent / "migrations"
# A running ingest is left to finish at shutdown (cut off, it would leave vectors without rows
# until the next ingest); this only bounds a stuck one.
INGEST_SHUTDOWN_WAIT_S = 600.0
log = structlog.get_logger()


def create_vector_store(settings: RetrievalSettings, meta: IndexMeta) -> VectorStore:
    """The Qdrant server's collection when QDRANT_URL is set, else the embedded index."""
    if settings.qdrant_url:
        return ServerVectorStore.for_url(
            meta,
            url=settings.qdrant_url,
            api_key=settings.qdrant_api_key.get_secret_value() or None,
            collection=settings.collection,
            rrf_k=settings.rrf_k,
        )
    return EdgeVectorStore(
        meta, path=settings.qdrant_path, collection=settings.collection, rrf_k=settings.rrf_k
    )


async def reconcile(pool: asyncpg.Pool, vectors: VectorStore) -> None:
    """Match the index against the registry, chapter by chapter: a chapter whose points differ
    from what its rows expect (an ingest cut off, a deleted index folder) is re-embedded by the
    next ingest, and points of chapters with no row (a first ingest cut off) are dropped.
    Under the ingest lock, so an ingest running on another replica is never mistaken for one
    cut off."""
    async with store.ingest_lock(pool):
        points, expected = await vectors.chapter_counts(), await store.passages_per_chapter(pool)
        stale = [c for c, n in expected.items() if points.get(c, 0) != n]
        orphans = [c for c in points if c not in expected]
        if stale:
            log.warning("index.chapters_mismatch", chapters=len(stale), first=stale[:5])
            await store.forget_file_hashes(pool, stale)
        for chapter_id in orphans:
            await vectors.delete_chapter(chapter_id)
        if orphans:
            log.warning("index.orphans_dropped", chapters=len(orphans), first=orphans[:5])


def create_app(settings: RetrievalSettings | None = None) -> FastAPI:
    settings = settings or RetrievalSettings()

    async def open_state(stack: AsyncExitStack) -> RetrievalState:
        embedder = create_embedder(settings)
        stack.push_async_callback(embedder.aclose)
        meta = IndexMeta(
            model=embedder.name, dimension=embedder.dimension, passages=embedder.passage_scheme
        )
        vectors = create_vector_store(settings, meta)
        stack.push_async_callback(vectors.close)
        await vectors.open()
        pool = await stack.enter_async_context(
            open_postgres(settings, schema="retrieval", migrations=MIGRATIONS)
        )
        await reconcile(pool, vectors)
        # Builds the HNSW graph of what the last run ingested (and drops deleted points)
        # before the first search: the embedded engine holds the GIL while it works.
        await vectors.optimize()
        background = BackgroundTasks("retrieval.ingest")
        # Registered last, so it runs first: ingests finish before the stores close.
        stack.push_async_callback(background.drain, timeout_s=INGEST_SHUTDOWN_WAIT_S)
        searcher = Searcher(
            pool,
            vectors,
            embedder,
            rrf_k=settings.rrf_k,
            candidates=settings.candidates,
            lexical_in_engine=settings.lexical == "engine",
            rescore=settings.rescore,
            bm25_k1=settings.bm25_k1,
            bm25_b=settings.bm25_b,
        )
        # Runs before the index and the embedder close: their last batches end first.
        stack.push_async_callback(searcher.aclose)
        state = RetrievalState(
            settings=settings,
            pool=pool,
            embedder=embedder,
            vectors=vectors,
            searcher=searcher,
            ingestor=Ingestor(pool, vectors, embedder, budget=settings.chunk_chars),
            background=background,
        )
        log.info(
            "retrieval.ready",
            embeddings=embedder.name,
            dimension=embedder.dimension,
            index="server" if settings.qdrant_url else "embedded",
            lexical=settings.lexical,
        )
        return state

    app = build_app(
        settings,
        title="Lectern retrieval",
        open_state=open_state,
        # A whole book in one upload; every other body is a small JSON document.
        larger_bodies={"/api/admin/ingest": settings.max_upload_bytes},
    )
    app.include_router(router)
    return app
