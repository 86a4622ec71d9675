"""The index behind retrieval: one set of contract tests that both engines pass (the embedded
Qdrant Edge shard in a temporary folder, and the Qdrant-server store through qdrant-client's
local mode, which speaks the server's client API), and a service-level test that an ingest
killed half way is recovered by the next one."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from qdrant_client import QdrantClient
from qdrant_edge import EdgeShard, FacetRequest, ScrollRequest

from lectern_dev.harness.database import run_sql
from lectern_dev.harness.services import admin_headers, internal_headers
from lectern_dev.ingest import NDJSON, ingest_form, post_files
from lectern_dev.stack import Stack
from lectern_retrieval.vectors import (
    EmbeddingMismatch,
    IndexLocked,
    IndexMeta,
    PassagePoint,
    VectorQuery,
    VectorStore,
    passage_point_id,
)
from lectern_retrieval.vectors_edge import EdgeVectorStore
from lectern_retrieval.vectors_server import ServerVectorStore

DIM = 16
META = IndexMeta(model="test-model", dimension=DIM, passages="test-passages")
# Three chapters of four chunks, two passages each; chunk n's passages point near axis n and
# carry one word no other chunk has.
WORDS = "gazebo turtlesim colcon rosbag lidar urdf rviz launch tf2 qos moveit navigation".split()
CHUNKS = [str(n).zfill(8) + "-0000-4000-8000-000000000000" for n in range(12)]
CHAPTER_OF = {chunk: f"ch{n // 4}" for n, chunk in enumerate(CHUNKS)}
Factory = Callable[..., VectorStore]


def axis(n: int) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[n % DIM] = 1.0
    return v


def near_axis(n: int, i: int) -> np.ndarray:
    """A unit vector close to axis n, different for every passage (no tied scores)."""
    v = axis(n) + 0.2 * np.random.default_rng(n * 10 + i).normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def points() -> list[PassagePoint]:
    return [
        PassagePoint(
            id=passage_point_id(chunk, i),
            dense=near_axis(n, i),
            text=f"Chapter {CHAPTER_OF[chunk]}: how the {WORDS[n]} tool works, part {i}",
            chunk_id=chunk,
            chapter_id=CHAPTER_OF[chunk],
            source="test",
        )
        for n, chunk in enumerate(CHUNKS)
        for i in range(2)
    ]


@pytest.fixture(params=["edge", "server"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    """A factory of stores on one folder: call it again to reopen the same index."""

    def make(meta: IndexMeta = META) -> VectorStore:
        if request.param == "edge":
            return EdgeVectorStore(meta, path=str(tmp_path), collection="t", rrf_k=60)
        return ServerVectorStore(
            meta, QdrantClient(path=str(tmp_path / "server")), collection="t", rrf_k=60
        )

    return make


@pytest.fixture
async def filled(make_store: Factory) -> AsyncIterator[VectorStore]:
    store = make_store()
    await store.open()
    await store.upsert(points())
    yield store
    await store.close()


def chunk_ids(ranked: list[tuple[str, float]]) -> list[str]:
    return [chunk for chunk, _ in ranked]


async def test_upsert_counts_points_per_chapter(filled: VectorStore) -> None:
    assert await filled.count() == 24
    assert await filled.chapter_counts() == {"ch0": 8, "ch1": 8, "ch2": 8}
    await filled.upsert(points()[:4])  # the same ids again replace, never duplicate
    assert await filled.count() == 24


async def test_dense_sparse_and_hybrid_find_the_right_chunk(filled: VectorStore) -> None:
    [dense] = await filled.query([VectorQuery(dense=axis(6))], limit=3)
    assert chunk_ids(dense)[0] == CHUNKS[6]
    assert len(dense) == 3 and len(set(chunk_ids(dense))) == 3  # each chunk once

    [sparse] = await filled.query([VectorQuery(text="which tool is rosbag?")], limit=3)
    assert chunk_ids(sparse)[0] == CHUNKS[3]

    [agree] = await filled.query([VectorQuery(dense=axis(9), text="qos settings")], limit=3)
    assert chunk_ids(agree)[0] == CHUNKS[9]
    # Fused: the dense leg's best (chunk 1) and the lexical leg's best (chunk 10) lead.
    [mixed] = await filled.query([VectorQuery(dense=axis(1), text="moveit arm")], limit=4)
    assert set(chunk_ids(mixed)[:2]) == {CHUNKS[1], CHUNKS[10]}


async def test_chapter_filter_keeps_to_the_chapter(filled: VectorStore) -> None:
    queries = [
        VectorQuery(dense=axis(1), chapter_id="ch2"),
        VectorQuery(text="which tool is turtlesim", chapter_id="ch2"),
        VectorQuery(dense=axis(9), text="which tool is turtlesim", chapter_id="ch2"),
    ]
    for ranked in await filled.query(queries, limit=10):
        assert ranked and {CHAPTER_OF[c] for c in chunk_ids(ranked)} == {"ch2"}
    [inside] = await filled.query([VectorQuery(dense=axis(9), chapter_id="ch2")], limit=1)
    assert chunk_ids(inside) == [CHUNKS[9]]


async def test_batch_answers_each_query_as_alone(filled: VectorStore) -> None:
    queries = [
        VectorQuery(dense=axis(0)),
        VectorQuery(text="urdf"),
        VectorQuery(dense=axis(7), text="launch files"),
        VectorQuery(dense=axis(6), chapter_id="ch1"),
    ]
    together = await filled.query(queries, limit=5)
    alone = [(await filled.query([q], limit=5))[0] for q in queries]
    assert [chunk_ids(r) for r in together] == [chunk_ids(r) for r in alone]
    assert [chunk_ids(r)[0] for r in together] == [CHUNKS[0], CHUNKS[5], CHUNKS[7], CHUNKS[6]]


async def test_delete_by_document_and_by_id(filled: VectorStore) -> None:
    await filled.delete_chapter("ch0")
    assert await filled.chapter_counts() == {"ch1": 8, "ch2": 8}
    [ranked] = await filled.query([VectorQuery(dense=axis(2), text="colcon")], limit=12)
    assert not {CHAPTER_OF[c] for c in chunk_ids(ranked)} & {"ch0"}

    # A changed chapter keeps the points of its current chunks only.
    await filled.delete_chapter("ch1", keep_chunks=[CHUNKS[4], CHUNKS[5]])
    assert await filled.chapter_counts() == {"ch1": 4, "ch2": 8}
    await filled.delete_points([passage_point_id(CHUNKS[4], 1)])
    assert await filled.count() == 11


async def test_index_survives_a_restart(make_store: Factory) -> None:
    store = make_store()
    await store.open()
    await store.upsert(points())
    await store.delete_chapter("ch2")
    await store.close()

    reopened = make_store()
    await reopened.open()
    try:
        await reopened.optimize()
        assert await reopened.chapter_counts() == {"ch0": 8, "ch1": 8}
        [ranked] = await reopened.query([VectorQuery(dense=axis(5), text="urdf")], limit=1)
        assert chunk_ids(ranked) == [CHUNKS[5]]
    finally:
        await reopened.close()


@pytest.mark.parametrize(
    "other",
    [
        IndexMeta(model="another-model", dimension=DIM, passages="test-passages"),
        IndexMeta(model="test-model", dimension=DIM * 2, passages="test-passages"),
        IndexMeta(model="test-model", dimension=DIM, passages="one-per-chunk"),
    ],
)
async def test_index_of_another_model_is_refused(make_store: Factory, other: IndexMeta) -> None:
    store = make_store()
    await store.open()
    await store.close()
    refused = make_store(other)
    with pytest.raises(EmbeddingMismatch) as raised:
        await refused.open()
    message = str(raised.value)
    assert "test-model" in message and other.model in message
    assert "re-ingest" in message
    await refused.close()


async def test_second_process_on_the_embedded_index_is_refused(tmp_path: Path) -> None:
    first = EdgeVectorStore(META, path=str(tmp_path), collection="t", rrf_k=60)
    await first.open()
    second = EdgeVectorStore(META, path=str(tmp_path), collection="t", rrf_k=60)
    try:
        with pytest.raises(IndexLocked, match="one writer"):
            await second.open()
    finally:
        await second.close()
        await first.close()


# ---- the service: an ingest killed half way ---------------------------------------------


def _big_source(edition: int, files: int = 48, sections: int = 3) -> dict[str, str]:
    """Files of several chunks each, every paragraph different (so every chunk is embedded);
    another edition changes every chunk."""
    out = {}
    for f in range(files):
        body = [f"# Topic {f}\n"]
        for s in range(sections):
            body.append(f"## Part {s} of topic {f}\n")
            body += [
                f"Paragraph {p} of part {s} in topic {f} explains how node{f}_{s}_{p} publishes "
                f"its readings on a topic, which the bridge forwards with a QoS depth of {p + s} "
                f"(edition {edition}). " * 3
                for p in range(2)
            ]
        out[f"topic-{f:02d}.md"] = "\n\n".join(body)
    return out


def _headers(stack: Stack) -> dict[str, str]:
    """The service is called directly (no gateway: a restarted backend would wait for
    Traefik's next health check), with the headers the gateway would add."""
    return {**admin_headers(stack), **internal_headers(stack)}


def _ingest(stack: Stack, source: str, files: dict[str, str]) -> dict:
    response = post_files(
        stack.config.url("retrieval"),
        source=source,
        files=[(p, t.encode()) for p, t in files.items()],
        headers=_headers(stack),
    )
    assert response.status_code == 200, response.text
    return response.json()


def _kill_half_way(stack: Stack, source: str, files: dict[str, str]) -> int:
    """Stream an ingest and kill -9 the retrieval process once half of it is embedded; how
    many chunks were embedded by then."""
    form = ingest_form(source, [(p, t.encode()) for p, t in files.items()])
    headers = {**_headers(stack), "accept": NDJSON}
    process = stack.processes["retrieval"].popen
    embedded = 0
    try:
        with httpx.stream(
            "POST",
            f"{stack.config.url('retrieval')}/api/admin/ingest",
            headers=headers,
            timeout=httpx.Timeout(600, connect=10),
            **form,
        ) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                event = json.loads(line) if line.strip() else {}
                if event.get("event") == "start":
                    total = event["embeddings"]
                elif event.get("event") == "progress":
                    embedded = event["embedded"]
                    if embedded >= total // 2:
                        os.killpg(process.pid, signal.SIGKILL)
                        break
    except httpx.HTTPError:
        pass  # the stream dies with the process
    process.wait(30)
    return embedded


def _index_points(stack: Stack) -> tuple[dict[str, int], set[str]]:
    """Points per chapter and every point id, read from the embedded shard itself (the
    service must be stopped: the index allows one opener)."""
    folder = stack.config.data_dir / "qdrant" / "edge" / "lectern_hybrid" / "shard"
    shard = EdgeShard.load(str(folder))
    try:
        counts = {
            str(h.value): h.count
            for h in shard.facet(FacetRequest(key="chapter_id", limit=10_000, exact=True)).hits
        }
        total = sum(counts.values())
        ids: set[str] = set()
        offset = None
        while True:
            records, offset = shard.scroll(ScrollRequest(limit=1000, offset=offset))
            ids |= {str(r.id) for r in records}
            if offset is None:
                break
        assert len(ids) == total
        return counts, ids
    finally:
        shard.close()


@pytest.fixture
def crash_stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack(
        "retrieval-crash",
        services=("retrieval",),
        with_auth=False,
        with_gateway=False,
        extra_env={"EMBEDDINGS_PROVIDER": "local"},
    )


def _rows(stack: Stack) -> list[dict]:
    return run_sql(
        stack.database_url or "",
        """SELECT chunk_id::text AS chunk_id, chapter_id, passages
             FROM retrieval.chunks WHERE chapter_id LIKE 'crashy--%'""",
    )


def test_ingest_killed_half_way_is_recovered_by_the_next(crash_stack: Stack) -> None:
    stack = crash_stack
    first = _big_source(edition=1)
    assert _kill_half_way(stack, "crashy", first) > 0
    # Killed between its points and its rows: the index holds passages no row stands for.
    stack.processes.pop("retrieval").stop()
    left, _ = _index_points(stack)
    assert sum(left.values()) > 0 and _rows(stack) == []
    stack.start_service("retrieval")
    stack.wait_ready()

    # The next ingest brings another edition: nothing of the killed one may stay behind.
    files = _big_source(edition=2)
    summary = _ingest(stack, "crashy", files)
    assert summary["files"] == len(files)
    assert summary["embeddings_computed"] == summary["chunks"]
    again = _ingest(stack, "crashy", files)
    assert again["embeddings_computed"] == 0  # the recovered index is trusted after

    found = httpx.post(
        f"{stack.config.url('retrieval')}/internal/search",
        headers=internal_headers(stack),
        json={"query": "how node7_2_1 publishes its readings", "top_k": 3},
        timeout=30,
    )
    assert found.status_code == 200
    assert found.json()["results"][0]["chapter_id"] == "crashy--topic-07"

    rows = _rows(stack)
    assert len({r["chapter_id"] for r in rows}) == len(files)
    per_chapter: dict[str, int] = {}
    for r in rows:
        per_chapter[r["chapter_id"]] = per_chapter.get(r["chapter_id"], 0) + r["passages"]
    stack.processes.pop("retrieval").stop()
    counts, ids = _index_points(stack)
    assert counts == per_chapter  # no chapter missing a passage or holding an extra one
    assert ids == {passage_point_id(r["chunk_id"], i) for r in rows for i in range(r["passages"])}
