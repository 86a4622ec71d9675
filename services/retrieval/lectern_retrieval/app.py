"""The retrieval service's app factory and lifespan.

In embedded mode (no QDRANT_URL) run it with ONE worker: qdrant-client's local mode locks its
folder, so a second process could not open it.
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
from lectern_retrieval.vectors import VectorStore

MIGRATIONS = Path(__file__).parent / "migrations"
# A running ingest is left to finish at shutdown (cut off, it would leave vectors without rows
# until the next ingest); this only bounds a stuck one.
INGEST_SHUTDOWN_WAIT_S = 600.0
log = structlog.get_logger()


async def _reconcile(pool: asyncpg.Pool, vectors: VectorStore) -> None:
    """If vectors went missing (e.g. the Qdrant folder was deleted), make the next ingest
    re-embed everything rather than trust the registry."""
    points, rows = await vectors.count(), await store.count_passages(pool)
    if points < rows:
        log.warning("index.vectors_missing", points=points, expected=rows)
        await store.forget_file_hashes(pool)


def create_app(settings: RetrievalSettings | None = None) -> FastAPI:
    settings = settings or RetrievalSettings()

    async def open_state(stack: AsyncExitStack) -> RetrievalState:
        embedder = create_embedder(settings)
        stack.push_async_callback(embedder.aclose)
        vectors = VectorStore(
            settings,
            model=embedder.name,
            dimension=embedder.dimension,
            passages=embedder.passage_scheme,
        )
        stack.push_async_callback(vectors.close)
        await vectors.open()
        pool = await stack.enter_async_context(
            open_postgres(settings, schema="retrieval", migrations=MIGRATIONS)
        )
        await _reconcile(pool, vectors)
        background = BackgroundTasks("retrieval.ingest")
        # Registered last, so it runs first: ingests finish before the stores close.
        stack.push_async_callback(background.drain, timeout_s=INGEST_SHUTDOWN_WAIT_S)
        state = RetrievalState(
            settings=settings,
            pool=pool,
            embedder=embedder,
            vectors=vectors,
            searcher=Searcher(
                pool, vectors, embedder, rrf_k=settings.rrf_k, candidates=settings.candidates
            ),
            ingestor=Ingestor(pool, vectors, embedder, budget=settings.chunk_chars),
            background=background,
        )
        log.info(
            "retrieval.ready",
            embeddings=embedder.name,
            dimension=embedder.dimension,
            qdrant="server" if settings.qdrant_url else "local",
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
