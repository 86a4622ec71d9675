"""The embedded index: a Qdrant Edge shard (`qdrant-edge-py`, Qdrant's Rust engine in-process)
in QDRANT_PATH/edge/<collection>/, with the metadata of its vectors beside it.

Measured on 0.9.0 (docs/RETRIEVAL.md, "Index engine"): every update is written to the shard's
write-ahead log before it returns, so a process killed mid-ingest reopens with every upsert
that returned and no half-written point; `optimize()` (HNSW build, vacuum) holds the GIL for
seconds at 10k points, so it runs only at start-up, before the service answers. The engine
refuses a second opener of its WAL with an opaque "WouldBlock"; a lock file of our own gives
the second process a message that says what to do.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import IO, Any

from qdrant_edge import (
    CountRequest,
    Distance,
    EdgeConfig,
    EdgeShard,
    EdgeSparseVectorParams,
    EdgeVectorParams,
    FacetRequest,
    FieldCondition,
    Filter,
    Fusion,
    MatchAny,
    MatchValue,
    Modifier,
    PayloadSchemaType,
    Point,
    Prefetch,
    Query,
    QueryBatchRequest,
    QueryRequest,
    UpdateOperation,
)

from lectern_retrieval.vectors import (
    DENSE,
    MAX_CHAPTERS,
    SPARSE,
    EmbeddingMismatch,
    IndexLocked,
    IndexMeta,
    PassagePoint,
    VectorQuery,
    VectorStore,
    bm25_document,
    bm25_query,
)


def _chapter_filter(chapter_id: str | None) -> Filter | None:
    if chapter_id is None:
        return None
    return Filter(must=[FieldCondition(key="chapter_id", match=MatchValue(chapter_id))])


class EdgeVectorStore(VectorStore):
    def __init__(self, meta: IndexMeta, *, path: str, collection: str, rrf_k: int) -> None:
        # One thread: the engine holds the GIL while it works, so more would only queue.
        super().__init__(meta, collection=collection, rrf_k=rrf_k, workers=1)
        self.folder = Path(path) / "edge" / collection
        self._shard: EdgeShard | None = None
        self._lock: IO[str] | None = None

    @property
    def shard(self) -> EdgeShard:
        if self._shard is None:
            raise RuntimeError("the index is not open")
        return self._shard

    def _config(self) -> EdgeConfig:
        return EdgeConfig(
            vectors={DENSE: EdgeVectorParams(size=self.meta.dimension, distance=Distance.Dot)},
            sparse_vectors={SPARSE: EdgeSparseVectorParams(modifier=Modifier.Idf)},
        )

    def _take_lock(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        lock = (self.folder / "writer.lock").open("a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            lock.close()
            raise IndexLocked(
                f"the embedded index {self.folder} is open in {holder}: it allows one writer. "
                f"Run the retrieval service with one worker, or set QDRANT_URL to a Qdrant "
                f"server to run several."
            ) from None
        lock.truncate(0)
        lock.write(f"process {os.getpid()}\n")
        lock.flush()
        self._lock = lock

    def _open(self) -> None:
        self._take_lock()
        shard_dir, meta_file = self.folder / "shard", self.folder / "meta.json"
        if (shard_dir / "edge_config.json").exists():
            found: dict[str, Any] = json.loads(meta_file.read_text()) if meta_file.exists() else {}
            self.meta.check(f"the index {self.folder}", found, size=found.get("dimension"))
            try:
                self._shard = EdgeShard.load(str(shard_dir), self._config())
            except Exception as exc:  # the engine's own compatibility check
                raise EmbeddingMismatch(f"the index {self.folder} cannot be opened: {exc}") from exc
            return
        # The metadata goes first: a shard never exists without the record of its vectors.
        tmp = meta_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.meta.as_dict()))
        tmp.replace(meta_file)
        shard = EdgeShard.create(str(shard_dir), self._config())
        shard.update(UpdateOperation.create_field_index("chapter_id", PayloadSchemaType.Keyword))
        self._shard = shard

    def _close(self) -> None:
        if self._shard is not None:
            self._shard.close()
            self._shard = None
        if self._lock is not None:
            self._lock.close()  # closing the file releases the lock
            self._lock = None

    def _count(self) -> int:
        return self.shard.count(CountRequest(exact=True))

    def _chapter_counts(self) -> dict[str, int]:
        response = self.shard.facet(FacetRequest(key="chapter_id", limit=MAX_CHAPTERS, exact=True))
        return {str(hit.value): hit.count for hit in response.hits if hit.count}

    def _upsert(self, points: list[PassagePoint]) -> None:
        self.shard.update(
            UpdateOperation.upsert_points(
                [
                    Point(
                        p.id,
                        {DENSE: p.dense.tolist(), SPARSE: bm25_document(p.text)},
                        p.payload,
                    )
                    for p in points
                ]
            )
        )

    def _delete_ids(self, ids: list[str]) -> None:
        self.shard.update(UpdateOperation.delete_points(list(ids)))

    def _delete_chapter(self, chapter_id: str, keep_chunks: list[str]) -> None:
        where = Filter(
            must=[FieldCondition(key="chapter_id", match=MatchValue(chapter_id))],
            must_not=[FieldCondition(key="chunk_id", match=MatchAny(keep_chunks))]
            if keep_chunks
            else None,
        )
        self.shard.update(UpdateOperation.delete_points_by_filter(where))

    def _request(self, q: VectorQuery, points: int) -> QueryRequest:
        where = _chapter_filter(q.chapter_id)
        legs = []
        if q.dense is not None:
            legs.append(Query.Nearest(q.dense.tolist(), using=DENSE))
        if q.text is not None:
            legs.append(Query.Nearest(bm25_query(q.text), using=SPARSE))
        if len(legs) == 1:
            return QueryRequest(
                limit=points, query=legs[0], filter=where, with_payload=["chunk_id"]
            )
        return QueryRequest(
            limit=points,
            # The stub types Fusion.Rrf as a class nested in Fusion, not as a Fusion.
            query=Fusion.Rrf(k=self.rrf_k),  # type: ignore[arg-type]
            prefetches=[Prefetch(limit=points, query=leg, filter=where) for leg in legs],
            filter=where,
            with_payload=["chunk_id"],
        )

    def _query(self, queries: list[VectorQuery], points: int) -> list[list[tuple[str, float]]]:
        results = self.shard.query_batch(
            QueryBatchRequest([self._request(q, points) for q in queries])
        )
        return [
            [(str(p.payload["chunk_id"]), float(p.score)) for p in hits if p.payload]
            for hits in results
        ]

    def _optimize(self) -> None:
        self.shard.optimize()
