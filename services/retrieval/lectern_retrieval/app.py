"""The retrieval service's app factory and lifespan.

In embedded mode (no QDRANT_URL) run it with ONE worker: qdrant-client's local mode locks its
folder, so a second process could not open it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from fastapi import FastAPI, Request

from lectern_common.app import build_app
from lectern_common.stores import open_stores
from lectern_retrieval import store
from lectern_retrieval.api import router
from lectern_retrieval.deps import RetrievalState
from lectern_retrieval.embeddings import create_embedder
from lectern_retrieval.ingest import Ingestor
from lectern_retrieval.search import Searcher
from lectern_retrieval.settings import RetrievalSettings
from lectern_retrieval.vectors import VectorStore

MIGRATIONS = Path(__file__).parent / "migrations"
log = structlog.get_logger()


async def _reconcile(pool, vectors: VectorStore) -> None:
    """If vectors went missing (e.g. the Qdrant folder was deleted), make the next ingest
    re-embed everything rather than trust the registry."""
    points, rows = await vectors.count(), await store.count_passages(pool)
    if points < rows:
        log.warning("index.vectors_missing", points=points, expected=rows)
        await store.forget_file_hashes(pool)


def create_app(settings: RetrievalSettings | None = None) -> FastAPI:
    settings = settings or RetrievalSettings()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict]:
        embedder = create_embedder(settings)
        vectors = VectorStore(
            settings,
            model=embedder.name,
            dimension=embedder.dimension,
            passages=embedder.passage_scheme,
        )
        try:
            await vectors.open()
            async with open_stores(settings, schema="retrieval", migrations=MIGRATIONS) as stores:
                await _reconcile(stores.pool, vectors)
                state = RetrievalState(
                    settings=settings,
                    stores=stores,
                    embedder=embedder,
                    vectors=vectors,
                    searcher=Searcher(
                        stores.pool,
                        vectors,
                        embedder,
                        rrf_k=settings.rrf_k,
                        candidates=settings.candidates,
                    ),
                    ingestor=Ingestor(stores.pool, vectors, embedder, budget=settings.chunk_chars),
                )
                log.info(
                    "retrieval.ready",
                    embeddings=embedder.name,
                    dimension=embedder.dimension,
                    qdrant="server" if settings.qdrant_url else "local",
                )
                yield {"retrieval": state}
                for task in list(state.background):
                    await task
        finally:
            await vectors.close()
            await embedder.aclose()

    def checks(request: Request) -> dict:
        state: RetrievalState = request.state.retrieval
        return {**state.stores.checks(), "qdrant": state.vectors.count}

    app = build_app(settings, title="Lectern retrieval", lifespan=lifespan, checks=checks)
    app.include_router(router)
    return app
