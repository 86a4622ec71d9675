"""The Qdrant collection of chunk vectors: local mode on disk by default, a server by QDRANT_URL.

qdrant-client is synchronous here and every call runs on a small thread pool, so brute-force
scoring in local mode never blocks the event loop. Local mode allows one thread (its storage
is not meant for concurrent writers); a server gets a few.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from lectern_retrieval.settings import RetrievalSettings

UPSERT_BATCH = 256


class EmbeddingMismatch(RuntimeError):
    """The collection holds vectors of another model or dimension."""


class VectorStore:
    def __init__(self, settings: RetrievalSettings, *, model: str, dimension: int) -> None:
        self.collection, self.model, self.dimension = settings.collection, model, dimension
        if settings.qdrant_url:
            self.client = QdrantClient(url=settings.qdrant_url, timeout=10,
                                       api_key=settings.qdrant_api_key.get_secret_value() or None)
            workers = 4
        else:
            self.client = QdrantClient(path=settings.qdrant_path)
            workers = 1
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qdrant")

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(
            self.pool, partial(fn, *args, **kwargs))

    async def open(self) -> None:
        await self._run(self._ensure_collection)

    def _ensure_collection(self) -> None:
        if not self.client.collection_exists(self.collection):
            self.client.create_collection(
                self.collection,
                vectors_config=models.VectorParams(size=self.dimension,
                                                   distance=models.Distance.COSINE),
                metadata={"embedding_model": self.model, "dimension": self.dimension})
            return
        info = self.client.get_collection(self.collection)
        meta = info.config.metadata or {}
        params = info.config.params.vectors
        size = params.size if isinstance(params, models.VectorParams) else None
        if meta.get("embedding_model") != self.model or size != self.dimension:
            raise EmbeddingMismatch(
                f"Qdrant collection '{self.collection}' holds vectors of "
                f"{meta.get('embedding_model', 'an unknown model')} (dimension {size}) but this "
                f"service embeds with {self.model} (dimension {self.dimension}). Switch "
                f"EMBEDDINGS_PROVIDER back, or point RETRIEVAL_COLLECTION at a new collection and "
                f"re-ingest; vectors of two models are never mixed.")

    async def count(self) -> int:
        result = await self._run(self.client.count, self.collection, exact=True)
        return result.count

    async def upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict]) -> None:
        for start in range(0, len(ids), UPSERT_BATCH):
            points = [models.PointStruct(id=i, vector=v.tolist(), payload=p) for i, v, p in zip(
                ids[start:start + UPSERT_BATCH], vectors[start:start + UPSERT_BATCH],
                payloads[start:start + UPSERT_BATCH], strict=True)]
            await self._run(self.client.upsert, self.collection, points=points, wait=True)

    async def delete(self, ids: list[str]) -> None:
        for start in range(0, len(ids), UPSERT_BATCH):
            await self._run(self.client.delete, self.collection,
                            points_selector=models.PointIdsList(
                                points=ids[start:start + UPSERT_BATCH]), wait=True)

    async def nearest(self, vector: np.ndarray, limit: int) -> list[tuple[str, float]]:
        result = await self._run(self.client.query_points, self.collection,
                                 query=vector.tolist(), limit=limit, with_payload=False)
        return [(str(p.id), float(p.score)) for p in result.points]

    async def score_ids(self, vector: np.ndarray, ids: list[str]) -> list[tuple[str, float]]:
        """Cosine scores for the given points only (a chapter filter): fetching a chapter's
        vectors by id is far faster than a payload filter in local mode."""
        if not ids:
            return []
        records = await self._run(self.client.retrieve, self.collection, ids=ids,
                                  with_vectors=True, with_payload=False)
        if not records:
            return []
        matrix = np.array([r.vector for r in records], dtype=np.float32)
        scores = matrix @ vector
        ranked = sorted(zip((str(r.id) for r in records), scores.tolist(), strict=True),
                        key=lambda pair: -pair[1])
        return ranked

    async def close(self) -> None:
        await self._run(self.client.close)
        self.pool.shutdown(wait=True)
