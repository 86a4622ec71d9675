"""The passage index behind one interface, `VectorStore`, with two engines: Qdrant's embedded
engine (`qdrant-edge-py`, a shard in a local folder) by default, and a Qdrant server (Qdrant
Cloud in production) through qdrant-client when QDRANT_URL is set.

Both hold the same collection: passage i of a chunk is the point uuid5(chunk_id, i), with
the payload {chunk_id, chapter_id, source} and two named vectors, `dense` (the embedder's unit
vectors, dot product) and `bm25` (a sparse BM25 document vector of the passage text, IDF
applied by the engine). Queries have one shape in both: the nearest `dense` points, the
nearest `bm25` points, or both as prefetches fused by RRF, each optionally filtered to one
chapter; a chunk scores as its best passage. Moving a book to a server is a re-ingest.

The engines are synchronous; every call runs on a small thread pool of the store's own, so
the event loop keeps serving while the index works.
"""

from __future__ import annotations

import asyncio
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import numpy as np
from qdrant_edge import Bm25, Bm25Config, SparseVector

UPSERT_BATCH = 256
# Points fetched per chunk wanted: neighbouring passages of one chunk often rank together.
PASSAGE_FANOUT = 5
DENSE, SPARSE = "dense", "bm25"
# Recorded with the index: an index of another layout is refused, never half-used.
LAYOUT = "dense+bm25/1"
# One lexical model for both engines, so their sparse vectors are the same numbers.
_BM25 = Bm25(Bm25Config(language="english"))

T = TypeVar("T")


def passage_point_id(chunk_id: str, index: int) -> str:
    return str(uuid.uuid5(uuid.UUID(chunk_id), str(index)))


def best_per_chunk(scored: list[tuple[str, float]], limit: int) -> list[tuple[str, float]]:
    """(chunk id, score) pairs of passages -> each chunk once, at its best passage's score."""
    best: dict[str, float] = {}
    for chunk_id, score in scored:
        if score > best.get(chunk_id, float("-inf")):
            best[chunk_id] = score
    return sorted(best.items(), key=lambda pair: -pair[1])[:limit]


def bm25_document(text: str) -> SparseVector:
    return _BM25.embed_document(text)


def bm25_query(text: str) -> SparseVector:
    return _BM25.embed_query(text)


# Facet results per call: more than any book has chapters.
MAX_CHAPTERS = 1_000_000


class EmbeddingMismatch(RuntimeError):
    """The index holds vectors of another model, dimension, passage scheme or layout."""


class IndexLocked(RuntimeError):
    """Another process has the embedded index open (it allows one writer)."""


@dataclass(frozen=True)
class IndexMeta:
    """What the vectors were made with; recorded when the index is created."""

    model: str
    dimension: int
    passages: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "embedding_model": self.model,
            "dimension": self.dimension,
            "passages": self.passages,
            "layout": LAYOUT,
        }

    def check(self, where: str, found: dict[str, Any], *, size: int | None) -> None:
        """Raise EmbeddingMismatch naming both sides unless `found` (the index's metadata)
        and `size` (its dense dimension) match this service's embedder."""
        if (
            found.get("embedding_model") == self.model
            and found.get("passages") == self.passages
            and found.get("layout") == LAYOUT
            and size == self.dimension
        ):
            return
        raise EmbeddingMismatch(
            f"{where} holds vectors of {found.get('embedding_model', 'an unknown model')} "
            f"(dimension {size}, passages {found.get('passages', 'one per chunk')}, layout "
            f"{found.get('layout', 'a single unnamed vector')}) but this service embeds with "
            f"{self.model} (dimension {self.dimension}, passages {self.passages}, layout "
            f"{LAYOUT}). Switch EMBEDDINGS_PROVIDER back, or point RETRIEVAL_COLLECTION at a "
            f"new collection and re-ingest; vectors of two models are never mixed."
        )


@dataclass(frozen=True)
class PassagePoint:
    id: str
    dense: np.ndarray
    text: str  # what the sparse BM25 vector is made of
    chunk_id: str
    chapter_id: str
    source: str

    @property
    def payload(self) -> dict[str, str]:
        return {"chunk_id": self.chunk_id, "chapter_id": self.chapter_id, "source": self.source}


@dataclass(frozen=True)
class VectorQuery:
    """One search: `dense` alone, `text` alone (BM25), or both fused by RRF."""

    dense: np.ndarray | None = None
    text: str | None = None
    chapter_id: str | None = None


class VectorStore(ABC):
    """The async interface the service uses; an engine implements the synchronous `_` calls."""

    # Calls the engine may run at once (the Batcher keeps this many batches in flight).
    concurrency: int = 1

    def __init__(self, meta: IndexMeta, *, collection: str, rrf_k: int, workers: int) -> None:
        self.meta, self.collection, self.rrf_k = meta, collection, rrf_k
        self.concurrency = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="index")

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, partial(fn, *args, **kwargs)
        )

    async def open(self) -> None:
        """Create the index or check that it was built like this service builds it."""
        await self._run(self._open)

    async def close(self) -> None:
        await self._run(self._close)
        self._pool.shutdown(wait=True)

    async def count(self) -> int:
        return await self._run(self._count)

    async def chapter_counts(self) -> dict[str, int]:
        """Points per chapter id, for checking the index against the registry."""
        return await self._run(self._chapter_counts)

    async def upsert(self, points: list[PassagePoint]) -> None:
        for start in range(0, len(points), UPSERT_BATCH):
            await self._run(self._upsert, points[start : start + UPSERT_BATCH])

    async def delete_points(self, ids: list[str]) -> None:
        for start in range(0, len(ids), UPSERT_BATCH):
            await self._run(self._delete_ids, ids[start : start + UPSERT_BATCH])

    async def delete_chapter(
        self, chapter_id: str, *, keep_chunks: list[str] | None = None
    ) -> None:
        """Delete a chapter's points, except those of `keep_chunks` (its current chunks)."""
        await self._run(self._delete_chapter, chapter_id, keep_chunks or [])

    async def query(
        self, queries: list[VectorQuery], *, limit: int
    ) -> list[list[tuple[str, float]]]:
        """For each query, the `limit` best chunks as (chunk id, score); one engine call for
        all of them (searches running together batch their queries)."""
        results = await self._run(self._query, queries, limit * PASSAGE_FANOUT)
        return [best_per_chunk(hits, limit) for hits in results]

    async def optimize(self) -> None:
        """Let the engine build its indexes and drop deleted points (a no-op on a server)."""
        await self._run(self._optimize)

    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...

    @abstractmethod
    def _count(self) -> int: ...

    @abstractmethod
    def _chapter_counts(self) -> dict[str, int]: ...

    @abstractmethod
    def _upsert(self, points: list[PassagePoint]) -> None: ...

    @abstractmethod
    def _delete_ids(self, ids: list[str]) -> None: ...

    @abstractmethod
    def _delete_chapter(self, chapter_id: str, keep_chunks: list[str]) -> None: ...

    @abstractmethod
    def _query(self, queries: list[VectorQuery], points: int) -> list[list[tuple[str, float]]]:
        """Per query, (chunk id, score) of the best `points` passages."""

    def _optimize(self) -> None:
        return None
