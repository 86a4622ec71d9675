"""Hybrid search: a dense leg (the index) and a lexical leg fused with reciprocal rank fusion;
an optional chapter filter narrows both. The lexical leg is BM25 over the chunk terms the ingest
stored in PostgreSQL, scored in memory (`lexical.py`; fused here) or, with
RETRIEVAL_LEXICAL=engine, the index's BM25 sparse vectors (fused by the engine in the same call
as the dense leg). With both legs here, the top fused candidates are rescored
(`rescoring.py`). Beside the results, a coverage verdict (`coverage.py`) from the
query's terms the book never mentions, looked up concurrently with the legs."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import asyncpg
import numpy as np

from lectern_common import metrics
from lectern_common.errors import ApiError, NotFound
from lectern_common.llm import LLMError
from lectern_retrieval import coverage, rescoring, store
from lectern_retrieval.batching import Batcher
from lectern_retrieval.embeddings import Embedder
from lectern_retrieval.lexical import LexicalIndex
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
# Query vectors kept (1.5 KB each): a question asked again (a class asking the same thing, a
# reader retrying) skips the model, the largest CPU cost of a search.
VECTOR_CACHE = 4096


@dataclass
class Searcher:
    pool: asyncpg.Pool
    vectors: VectorStore
    embedder: Embedder
    rrf_k: int
    candidates: int
    lexical_in_engine: bool = False
    rescore: bool = True
    bm25_k1: float = 1.0
    bm25_b: float = 0.0
    _vectors: OrderedDict[str, np.ndarray] = field(default_factory=OrderedDict, repr=False)

    def __post_init__(self) -> None:
        self.lexical = LexicalIndex(self.pool, k1=self.bm25_k1, b=self.bm25_b)
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
        key = self.embedder.query_key(query)
        if (cached := self._vectors.get(key)) is not None:
            self._vectors.move_to_end(key)
            return cached
        try:
            vector = await self._embed(query)
        except LLMError as exc:
            raise ApiError(
                503,
                "embeddings_unavailable",
                "the embedding model is unavailable, try again shortly",
            ) from exc
        self._vectors[key] = vector
        if len(self._vectors) > VECTOR_CACHE:
            self._vectors.popitem(last=False)
        return vector

    async def _lexical(
        self, query: str, chapter_id: str | None, terms: list[coverage.Term]
    ) -> tuple[list[tuple[str, float]], dict[str, bool]]:
        """The BM25 leg (in memory, `lexical.py`) and which query terms the book mentions."""
        with metrics.SEARCH_LEG_LATENCY.labels("lexical").time():
            asked = await self.lexical.tokens(query, [t.text for t in terms])
            snapshot = await self.lexical.current(asked.generation)
            found = self.lexical.search(
                snapshot, asked.lexemes, limit=self.candidates, chapter_id=chapter_id
            )
        return found, self.lexical.present(snapshot, asked)

    async def _legs(
        self, query: str, chapter_id: str | None, mode: Mode, terms: list[coverage.Term]
    ) -> tuple[list[list[tuple[str, float]]], float | None, dict[str, bool]]:
        """The ranked legs to fuse (one when the engine fused them or only one was asked),
        the dense leg's best cosine when a leg of its own gave it, and which query terms the
        book mentions."""
        if mode == "lexical" and not self.lexical_in_engine:
            found, present = await self._lexical(query, chapter_id, terms)
            return [found], None, present
        if mode == "lexical" or mode == "dense" or self.lexical_in_engine:
            present_task = asyncio.ensure_future(self._lexical(query, chapter_id, terms))
            try:
                if mode == "lexical":
                    with metrics.SEARCH_LEG_LATENCY.labels("engine").time():
                        found = await self._index(VectorQuery(text=query, chapter_id=chapter_id))
                    legs, dense_top = [found], None
                else:
                    fused_text = query if mode == "hybrid" else None
                    leg_name = "engine" if fused_text else "dense"
                    with metrics.SEARCH_LEG_LATENCY.labels(leg_name).time():
                        vector = await self._query_vector(query)
                        leg = await self._index(
                            VectorQuery(dense=vector, text=fused_text, chapter_id=chapter_id)
                        )
                    legs, dense_top = [leg], (_best(leg) if fused_text is None else None)
            except BaseException:
                present_task.cancel()
                raise
            _, present = await present_task
            return legs, dense_top, present

        async def dense() -> list[tuple[str, float]]:
            with metrics.SEARCH_LEG_LATENCY.labels("dense").time():
                vector = await self._query_vector(query)
                return await self._index(VectorQuery(dense=vector, chapter_id=chapter_id))

        dense_leg, (lexical_leg, present) = await asyncio.gather(
            dense(), self._lexical(query, chapter_id, terms)
        )
        return [dense_leg, lexical_leg], _best(dense_leg), present

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
        legs, dense_top, present = await self._legs(query, chapter_id, mode, terms)
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
