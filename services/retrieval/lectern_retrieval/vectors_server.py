"""The index on a Qdrant server (Qdrant Cloud in production) through qdrant-client: the same
collection, point ids, payload and query shape as the embedded engine, sent over HTTP.

qdrant-client's local mode (`QdrantClient(path=...)` or ":memory:") speaks the same client
API, which is how the tests exercise this class; it scores by brute force in Python and
ignores payload indexes, so it is not for serving.
"""

from __future__ import annotations

import warnings

from qdrant_client import QdrantClient, models
from qdrant_edge import SparseVector

from lectern_retrieval.vectors import (
    DENSE,
    MAX_CHAPTERS,
    SPARSE,
    IndexMeta,
    PassagePoint,
    VectorQuery,
    VectorStore,
    bm25_document,
    bm25_query,
)


def _sparse(vector: SparseVector) -> models.SparseVector:
    return models.SparseVector(indices=list(vector.indices), values=list(vector.values))


def _chapter_filter(chapter_id: str | None) -> models.Filter | None:
    if chapter_id is None:
        return None
    return models.Filter(
        must=[models.FieldCondition(key="chapter_id", match=models.MatchValue(value=chapter_id))]
    )


class ServerVectorStore(VectorStore):
    def __init__(
        self,
        meta: IndexMeta,
        client: QdrantClient,
        *,
        collection: str,
        rrf_k: int,
        workers: int = 1,
    ) -> None:
        super().__init__(meta, collection=collection, rrf_k=rrf_k, workers=workers)
        self.client = client

    @classmethod
    def for_url(
        cls, meta: IndexMeta, *, url: str, api_key: str | None, collection: str, rrf_k: int
    ) -> ServerVectorStore:
        # A server answers several calls at once; four keep two cores busy without queueing.
        client = QdrantClient(url=url, api_key=api_key, timeout=10)
        return cls(meta, client, collection=collection, rrf_k=rrf_k, workers=4)

    def _open(self) -> None:
        if not self.client.collection_exists(self.collection):
            self.client.create_collection(
                self.collection,
                vectors_config={
                    DENSE: models.VectorParams(
                        size=self.meta.dimension, distance=models.Distance.DOT
                    )
                },
                sparse_vectors_config={
                    SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)
                },
                metadata=self.meta.as_dict(),
            )
            with warnings.catch_warnings():
                # Local mode (tests) says payload indexes have no effect there; a server uses it.
                warnings.simplefilter("ignore", UserWarning)
                self.client.create_payload_index(
                    self.collection, "chapter_id", models.PayloadSchemaType.KEYWORD
                )
            return
        config = self.client.get_collection(self.collection).config
        vectors = config.params.vectors
        dense = vectors.get(DENSE) if isinstance(vectors, dict) else None
        sparse = (config.params.sparse_vectors or {}).get(SPARSE)
        found = dict(config.metadata or {})
        if sparse is None or sparse.modifier != models.Modifier.IDF:
            found.pop("layout", None)
        self.meta.check(
            f"Qdrant collection '{self.collection}'",
            found,
            size=dense.size if dense is not None else None,
        )

    def _close(self) -> None:
        self.client.close()

    def _count(self) -> int:
        return self.client.count(self.collection, exact=True).count

    def _chapter_counts(self) -> dict[str, int]:
        response = self.client.facet(self.collection, "chapter_id", limit=MAX_CHAPTERS, exact=True)
        return {str(hit.value): hit.count for hit in response.hits if hit.count}

    def _upsert(self, points: list[PassagePoint]) -> None:
        self.client.upsert(
            self.collection,
            points=[
                models.PointStruct(
                    id=p.id,
                    vector={DENSE: p.dense.tolist(), SPARSE: _sparse(bm25_document(p.text))},
                    payload=p.payload,
                )
                for p in points
            ],
            wait=True,
        )

    def _delete_ids(self, ids: list[str]) -> None:
        self.client.delete(
            self.collection,
            points_selector=models.PointIdsList(points=list[models.ExtendedPointId](ids)),
            wait=True,
        )

    def _delete_chapter(self, chapter_id: str, keep_chunks: list[str]) -> None:
        keep: list[models.Condition] | None = (
            [models.FieldCondition(key="chunk_id", match=models.MatchAny(any=keep_chunks))]
            if keep_chunks
            else None
        )
        chapter: list[models.Condition] = [
            models.FieldCondition(key="chapter_id", match=models.MatchValue(value=chapter_id))
        ]
        self.client.delete(
            self.collection,
            points_selector=models.FilterSelector(
                filter=models.Filter(must=chapter, must_not=keep)
            ),
            wait=True,
        )

    def _request(self, q: VectorQuery, points: int) -> models.QueryRequest:
        where = _chapter_filter(q.chapter_id)
        legs: list[tuple[list[float] | models.SparseVector, str]] = []
        if q.dense is not None:
            legs.append((q.dense.tolist(), DENSE))
        if q.text is not None:
            legs.append((_sparse(bm25_query(q.text)), SPARSE))
        if len(legs) == 1:
            vector, using = legs[0]
            return models.QueryRequest(
                query=vector, using=using, filter=where, limit=points, with_payload=["chunk_id"]
            )
        return models.QueryRequest(
            prefetch=[
                models.Prefetch(query=vector, using=using, filter=where, limit=points)
                for vector, using in legs
            ],
            query=models.RrfQuery(rrf=models.Rrf(k=self.rrf_k)),
            filter=where,
            limit=points,
            with_payload=["chunk_id"],
        )

    def _query(self, queries: list[VectorQuery], points: int) -> list[list[tuple[str, float]]]:
        responses = self.client.query_batch_points(
            self.collection, requests=[self._request(q, points) for q in queries]
        )
        return [
            [
                (str(p.payload["chunk_id"]), float(p.score))
                for p in response.points
                if p.payload and "chunk_id" in p.payload
            ]
            for response in responses
        ]
