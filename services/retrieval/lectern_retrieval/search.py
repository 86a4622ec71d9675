"""Hybrid search: a dense leg (the index) and a lexical leg fused with reciprocal rank fusion;
an optional chapter filter narrows both. The lexical leg is BM25 in PostgreSQL (fused here) or,
with RETRIEVAL_LEXICAL=engine, the index's BM25 sparse vectors (fused by the engine in the same
call as the dense leg). With both legs here, the top fused candidates are rescored
(`rescoring.py`). Beside the results, a coverage verdict (`coverage.py`) from the
query's terms the book never mentions, looked up concurrently with the legs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial
from typing import Literal

import asyncpg
import numpy as np

from lectern_common import metrics
from lectern_common.errors import ApiError, NotFound
from lectern_common.gemini import LLMError
from lectern_retrieval import coverage, rescoring, store
from lectern_retrieval.batching import Batcher
from lectern_retrieval.embeddings import Embedder
from lectern_retrieval.vectors import VectorQuery, VectorStore

Mode = Literal["hybrid", "dense", "lexical"]


def rrf(legs: list[tuple[list[tuple[str, float]], float]], *, k: int) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: each leg adds weight / (k + rank) for every id it ranks."""
    scores: dict[str, float] = {}
    for ranked, weight in legs:
        for rank, (chunk_id, _) in enumerate(ranked, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda item: -item[1])


# Index searches sent in one call at most (each asks for a few hundred points).
QUERY_BATCH = 32


@dataclass
class Searcher:
    pool: asyncpg.Pool
    vectors: VectorStore
    embedder: Embedder
    rrf_k: int
    candidates: int
    lexical_in_engine: bool = False
    rescore: bool = True

    def __post_init__(self) -> None:
        self._embed: Batcher[str, np.ndarray] = Batcher(
            self._embed_rows,
            max_batch=self.embedder.query_batch,
            max_in_flight=self.embedder.query_concurrency,
        )
        self._index: Batcher[VectorQuery, list[tuple[str, float]]] = Batcher(
            partial(self.vectors.query, limit=self.candidates),
            max_batch=QUERY_BATCH,
            max_in_flight=self.vectors.concurrency,
        )

    async def aclose(self) -> None:
        await self._embed.aclose()
        await self._index.aclose()

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

    async def _legs(
        self, query: str, chapter_id: str | None, mode: Mode
    ) -> tuple[list[list[tuple[str, float]]], float | None]:
        """The ranked legs to fuse (one when the engine fused them or only one was asked) and
        the dense leg's best cosine when a leg of its own gave it."""

        async def lexical() -> list[tuple[str, float]]:
            with metrics.SEARCH_LEG_LATENCY.labels("lexical").time():
                return await store.lexical(
                    self.pool, query, limit=self.candidates, chapter_id=chapter_id
                )

        if mode == "lexical":
            if self.lexical_in_engine:
                with metrics.SEARCH_LEG_LATENCY.labels("engine").time():
                    found = await self._index(VectorQuery(text=query, chapter_id=chapter_id))
                return [found], None
            return [await lexical()], None
        if mode == "dense" or self.lexical_in_engine:
            fused_text = query if mode == "hybrid" else None
            leg_name = "engine" if fused_text else "dense"
            with metrics.SEARCH_LEG_LATENCY.labels(leg_name).time():
                vector = await self._query_vector(query)
                leg = await self._index(
                    VectorQuery(dense=vector, text=fused_text, chapter_id=chapter_id)
                )
            return [leg], (_best(leg) if fused_text is None else None)

        async def dense() -> list[tuple[str, float]]:
            with metrics.SEARCH_LEG_LATENCY.labels("dense").time():
                vector = await self._query_vector(query)
                return await self._index(VectorQuery(dense=vector, chapter_id=chapter_id))

        legs = list(await asyncio.gather(dense(), lexical()))
        return legs, _best(legs[0])

    async def search(
        self, query: str, *, top_k: int, chapter_id: str | None, mode: Mode = "hybrid"
    ) -> dict:
        """`{"results": [...], "coverage": {"verdict", "score"}}`."""
        with metrics.SEARCH_LATENCY.labels(mode).time():
            return await self._search(query, top_k=top_k, chapter_id=chapter_id, mode=mode)

    async def _search(self, query: str, *, top_k: int, chapter_id: str | None, mode: Mode) -> dict:
        if chapter_id is not None and not await store.chapter_exists(self.pool, chapter_id):
            raise NotFound("chapter")
        terms = coverage.query_terms(query)
        (legs, dense_top), present = await asyncio.gather(
            self._legs(query, chapter_id, mode),
            store.terms_present(self.pool, [t.text for t in terms]),
        )
        ranked = rrf([(leg, 1.0) for leg in legs], k=self.rrf_k) if len(legs) > 1 else legs[0]
        # Vectors of a half-finished ingest may have no row yet: ask for a few spare ids.
        depth = top_k + 10
        rescored = self.rescore and len(legs) == 2
        if rescored:
            depth = max(depth, rescoring.DEPTH)
        wanted = ranked[:depth]
        rows = await store.chunks_by_id(self.pool, [i for i, _ in wanted])
        if rescored:
            wanted = _rescore(query, wanted, rows, dense_leg=legs[0], lexical_leg=legs[1])
        results = []
        for chunk_id, score in wanted:
            if (row := rows.get(chunk_id)) is not None:
                results.append({**row, "score": round(score, 6)})
            if len(results) == top_k:
                break
        verdict = coverage.judge(terms, present, dense_top)
        return {"results": results, "coverage": verdict.as_dict()}


def _rescore(
    query: str,
    fused: list[tuple[str, float]],
    rows: dict[str, dict],
    *,
    dense_leg: list[tuple[str, float]],
    lexical_leg: list[tuple[str, float]],
) -> list[tuple[str, float]]:
    """The fused candidates that have a row, in the rescoring's order."""
    dense, lexical = dict(dense_leg), dict(lexical_leg)
    candidates = [
        rescoring.Candidate(
            chunk_id,
            fused=score,
            dense=dense.get(chunk_id),
            lexical=lexical.get(chunk_id),
            text=row["text"],
            heading=f"{row['section'] or ''} {row['title'] or ''}",
        )
        for chunk_id, score in fused
        if (row := rows.get(chunk_id)) is not None
    ]
    return rescoring.rescore(query, candidates, dense_leg, lexical_leg)


def _best(leg: list[tuple[str, float]]) -> float:
    """The best score of a ranked leg (0 when it found nothing)."""
    return leg[0][1] if leg else 0.0
