"""Hybrid search: a dense leg (Qdrant) and a lexical leg (PostgreSQL full-text search) run
together and are fused with reciprocal rank fusion; an optional chapter filter narrows both."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial
from typing import Literal

import asyncpg
import numpy as np

from lectern_common.errors import ApiError, NotFound
from lectern_common.gemini import LLMError
from lectern_retrieval import store
from lectern_retrieval.batching import Batcher
from lectern_retrieval.embeddings import Embedder
from lectern_retrieval.vectors import VectorStore

Mode = Literal["hybrid", "dense", "lexical"]


def rrf(legs: list[tuple[list[tuple[str, float]], float]], *, k: int) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: each leg adds weight / (k + rank) for every id it ranks."""
    scores: dict[str, float] = {}
    for ranked, weight in legs:
        for rank, (chunk_id, _) in enumerate(ranked, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda item: -item[1])


# Vector searches sent to Qdrant in one call at most (each asks for a few hundred points).
NEAREST_BATCH = 32


@dataclass
class Searcher:
    pool: asyncpg.Pool
    vectors: VectorStore
    embedder: Embedder
    rrf_k: int
    candidates: int

    def __post_init__(self) -> None:
        self._embed: Batcher[str, np.ndarray] = Batcher(
            self._embed_rows,
            max_batch=self.embedder.query_batch,
            max_in_flight=self.embedder.query_concurrency,
        )
        self._nearest = Batcher(
            partial(self.vectors.nearest, limit=self.candidates),
            max_batch=NEAREST_BATCH,
            max_in_flight=self.vectors.concurrency,
        )

    async def _embed_rows(self, queries: list[str]) -> list[np.ndarray]:
        return list(await self.embedder.embed_queries(queries))

    async def _query_vector(self, query: str) -> np.ndarray:
        try:
            return await self._embed(query)
        except LLMError as exc:
            raise ApiError(
                503,
                "embeddings_unavailable",
                "the embedding model is unavailable, try again shortly",
            ) from exc

    async def _dense(self, query: str, chapter_id: str | None) -> list[tuple[str, float]]:
        vector = await self._query_vector(query)
        if chapter_id is None:
            return await self._nearest(vector)
        chunks = await store.chapter_passages(self.pool, chapter_id)
        return (await self.vectors.score_chunks(vector, chunks))[: self.candidates]

    async def search(
        self, query: str, *, top_k: int, chapter_id: str | None, mode: Mode = "hybrid"
    ) -> list[dict]:
        if chapter_id is not None and not await store.chapter_exists(self.pool, chapter_id):
            raise NotFound("chapter")
        legs: list[tuple[list[tuple[str, float]], float]] = []
        if mode == "hybrid":
            dense, lexical = await asyncio.gather(
                self._dense(query, chapter_id),
                store.lexical(self.pool, query, limit=self.candidates, chapter_id=chapter_id),
            )
            legs = [(dense, 1.0), (lexical, 1.0)]
        elif mode == "dense":
            legs = [(await self._dense(query, chapter_id), 1.0)]
        else:
            legs = [
                (
                    await store.lexical(
                        self.pool, query, limit=self.candidates, chapter_id=chapter_id
                    ),
                    1.0,
                )
            ]
        ranked = rrf(legs, k=self.rrf_k) if mode == "hybrid" else legs[0][0]
        # Vectors of a half-finished ingest may have no row yet: ask for a few spare ids.
        wanted = ranked[: top_k + 10]
        rows = await store.chunks_by_id(self.pool, [i for i, _ in wanted])
        results = []
        for chunk_id, score in wanted:
            if (row := rows.get(chunk_id)) is not None:
                results.append({**row, "score": round(score, 6)})
            if len(results) == top_k:
                break
        return results
