"""Time the index engines through retrieval's `VectorStore` interface, without a stack:
10,000 random unit passages (384-d, a BM25 vector each, 700 chapters), then dense, hybrid and
chapter-filtered queries one at a time and as batches of 50.

    uv run --frozen python bench/vector_store_bench.py [--points 10000] [--engines edge,server]

`server` is qdrant-client's local mode (what the tests use for the server store; a real
Qdrant server is not installable here), so its figures are not a server's.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

import numpy as np
from qdrant_client import QdrantClient

from lectern_retrieval.vectors import IndexMeta, PassagePoint, VectorQuery, VectorStore
from lectern_retrieval.vectors_edge import EdgeVectorStore
from lectern_retrieval.vectors_server import ServerVectorStore

WORDS = "robot gazebo sensor topic node launch world plugin camera lidar bridge qos".split()


def make(engine: str, folder: str, dim: int) -> VectorStore:
    meta = IndexMeta(model="bench", dimension=dim, passages="bench")
    if engine == "edge":
        return EdgeVectorStore(meta, path=folder, collection="bench", rrf_k=60)
    return ServerVectorStore(meta, QdrantClient(path=folder), collection="bench", rrf_k=60)


async def timed(store: VectorStore, queries: list[VectorQuery], rounds: int) -> float:
    """Median milliseconds of one `query` call over `rounds`."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        await store.query(queries, limit=20)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def bench(engine: str, points: int, dim: int) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(points, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with tempfile.TemporaryDirectory() as folder:
        store = make(engine, folder, dim)
        await store.open()
        start = time.perf_counter()
        await store.upsert(
            [
                PassagePoint(
                    id=f"00000000-0000-4000-8000-{n:012d}",
                    dense=vectors[n],
                    text=" ".join(rng.choice(WORDS, 30)),
                    chunk_id=f"00000000-0000-4000-9000-{n // 3:012d}",
                    chapter_id=f"c{n % 700}",
                    source="bench",
                )
                for n in range(points)
            ]
        )
        upsert_s = time.perf_counter() - start
        start = time.perf_counter()
        await store.optimize()
        optimize_s = time.perf_counter() - start
        print(f"{engine}: {points} points, upsert {upsert_s:.2f} s, optimize {optimize_s:.2f} s")
        shapes = {
            "dense": lambda n: VectorQuery(dense=vectors[n]),
            "hybrid": lambda n: VectorQuery(dense=vectors[n], text="camera lidar bridge"),
            "dense, chapter filter": lambda n: VectorQuery(dense=vectors[n], chapter_id=f"c{n}"),
            "hybrid, chapter filter": lambda n: VectorQuery(
                dense=vectors[n], text="camera lidar", chapter_id=f"c{n}"
            ),
        }
        for name, shape in shapes.items():
            one = await timed(store, [shape(1)], rounds=15)
            fifty = await timed(store, [shape(n) for n in range(50)], rounds=5)
            print(f"  {name:24s} one {one:7.2f} ms   batch of 50 {fifty:8.1f} ms")
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--engines", default="edge,server")
    args = parser.parse_args()
    for engine in args.engines.split(","):
        asyncio.run(bench(engine, args.points, args.dim))


if __name__ == "__main__":
    main()
