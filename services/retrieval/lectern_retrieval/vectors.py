"""The Qdrant collection of passage vectors: local mode on disk by default, a server by
QDRANT_URL. A chunk is embedded as one or more passages; passage i of a chunk is the point
uuid5(chunk_id, i) with the chunk id in its payload, and a chunk scores as its best passage.

qdrant-client is synchronous here and every call runs on a small thread pool, so brute-force
scoring in local mode never blocks the event loop. Local mode allows one thread (its storage
is not meant for concurrent writers); a server gets a few.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from lectern_retrieval.settings import RetrievalSettings

UPSERT_BATCH = 256
# Points fetched per chunk wanted: neighbouring passages of one chunk often rank together.
PASSAGE_FANOUT = 5


def passage_point_id(chunk_id: str, index: int) -> str:
    return str(uuid.uuid5(uuid.UUID(chunk_id), str(index)))


def best_per_chunk(scored: list[tuple[str, float]], limit: int) -> list[tuple[str, float]]:
    """(chunk id, score) pairs of passages -> each chunk once, at its best passage's score."""
    best: dict[str, float] = {}
    for chunk_id, score in scored:
        if score > best.get(chunk_id, float("-inf")):
            best[chunk_id] = score
    return sorted(best.items(), key=lambda pair: -pair[1])[:limit]


class EmbeddingMismatch(RuntimeError):
    """The collection holds vectors of another model or dimension."""


class VectorStore:
    def __init__(
        self, settings: RetrievalSettings, *, model: str, dimension: int, passages: str
    ) -> None:
        self.collection, self.model, self.dimension = settings.collection, model, dimension
        self.passages = passages
        if settings.qdrant_url:
            self.client = QdrantClient(
                url=settings.qdrant_url,
                timeout=10,
                api_key=settings.qdrant_api_key.get_secret_value() or None,
            )
            workers = 4
        else:
            self.client = QdrantClient(path=settings.qdrant_path)
            workers = 1
        self.concurrency = workers
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qdrant")

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(
            self.pool, partial(fn, *args, **kwargs)
        )

    async def open(self) -> None:
        await self._run(self._ensure_collection)

    def _ensure_collection(self) -> None:
        if not self.client.collection_exists(self.collection):
            self.client.create_collection(
                self.collection,
                vectors_config=models.VectorParams(
                    size=self.dimension, distance=models.Distance.DOT
                ),
                metadata={
                    "embedding_model": self.model,
                    "dimension": self.dimension,
                    "passages": self.passages,
                },
            )
            return
        info = self.client.get_collection(self.collection)
        meta = info.config.metadata or {}
        params = info.config.params.vectors
        size = params.size if isinstance(params, models.VectorParams) else None
        if (
            meta.get("embedding_model") != self.model
            or size != self.dimension
            or meta.get("passages") != self.passages
        ):
            raise EmbeddingMismatch(
                f"Qdrant collection '{self.collection}' holds vectors of "
                f"{meta.get('embedding_model', 'an unknown model')} (dimension {size}, passages "
                f"{meta.get('passages', 'one per chunk')}) but this service embeds with "
                f"{self.model} (dimension {self.dimension}, passages {self.passages}). Switch "
                f"EMBEDDINGS_PROVIDER back, or point RETRIEVAL_COLLECTION at a new collection and "
                f"re-ingest; vectors of two models are never mixed."
            )

    async def count(self) -> int:
        result = await self._run(self.client.count, self.collection, exact=True)
        return result.count

    async def upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict]) -> None:
        for start in range(0, len(ids), UPSERT_BATCH):
            points = [
                models.PointStruct(id=i, vector=v.tolist(), payload=p)
                for i, v, p in zip(
                    ids[start : start + UPSERT_BATCH],
                    vectors[start : start + UPSERT_BATCH],
                    payloads[start : start + UPSERT_BATCH],
                    strict=True,
                )
            ]
            await self._run(self.client.upsert, self.collection, points=points, wait=True)

    async def delete(self, ids: list[str]) -> None:
        for start in range(0, len(ids), UPSERT_BATCH):
            await self._run(
                self.client.delete,
                self.collection,
                points_selector=models.PointIdsList(
                    points=list[models.ExtendedPointId](ids[start : start + UPSERT_BATCH])
                ),
                wait=True,
            )

    async def nearest(self, vectors: list[np.ndarray], limit: int) -> list[list[tuple[str, float]]]:
        """For each query vector, the `limit` chunks with the best passages: (chunk id, cosine
        score). One call for all of them (searches running together batch their vectors)."""
        requests = [
            models.QueryRequest(
                query=v.tolist(), limit=limit * PASSAGE_FANOUT, with_payload=["chunk_id"]
            )
            for v in vectors
        ]
        results = await self._run(
            self.client.query_batch_points, self.collection, requests=requests
        )
        return [
            best_per_chunk(
                [
                    (p.payload["chunk_id"], float(p.score))
                    for p in r.points
                    if p.payload and "chunk_id" in p.payload
                ],
                limit,
            )
            for r in results
        ]

    async def score_chunks(
        self, vector: np.ndarray, chunks: dict[str, int]
    ) -> list[tuple[str, float]]:
        """Scores for the given chunks only (a chapter filter; `chunks`: id -> passages):
        fetching a chapter's vectors by id is far faster than a payload filter in local mode."""
        owner = {
            passage_point_id(chunk_id, i): chunk_id
            for chunk_id, n in chunks.items()
            for i in range(n)
        }
        if not owner:
            return []
        records = await self._run(
            self.client.retrieve,
            self.collection,
            ids=list(owner),
            with_vectors=True,
            with_payload=False,
        )
        if not records:
            return []
        matrix = np.array([r.vector for r in records], dtype=np.float32)
        scores = matrix @ vector
        return best_per_chunk(
            [(owner[str(r.id)], s) for r, s in zip(records, scores.tolist(), strict=True)],
            len(chunks),
        )

    async def close(self) -> None:
        await self._run(self.client.close)
        self.pool.shutdown(wait=True)
