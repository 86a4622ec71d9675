"""The query side of the dense leg: a question asked again reuses its vector (no model run),
and a burst's questions embedded in length-sorted sub-batches get the same vectors as one by
one. The real local model; the Searcher with fake stores (the vector path is under test)."""

from __future__ import annotations

import numpy as np
import pytest

from lectern_retrieval.embeddings import LocalEmbedder
from lectern_retrieval.search import VECTOR_CACHE, Searcher


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder(threads=1, batch=8)


class CountingEmbedder:
    """The local model's keys, and a count of the questions it was asked to embed."""

    name, dimension, passage_scheme = "counting", 4, "whole"
    query_concurrency, query_batch = 1, 16

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def query_key(self, query: str) -> str:
        return " ".join(query.lower().split())

    async def embed_queries(self, texts: list[str]) -> np.ndarray:
        self.embedded += texts
        return np.ones((len(texts), self.dimension), dtype=np.float32)


def searcher(embedder: object) -> Searcher:
    return Searcher(pool=None, vectors=_NoIndex(), embedder=embedder, rrf_k=60, candidates=20)  # type: ignore[arg-type]


class _NoIndex:
    concurrency = 1

    async def query(self, queries: list, *, limit: int) -> list:
        return [[] for _ in queries]


async def test_a_question_asked_again_is_not_embedded_again() -> None:
    model = CountingEmbedder()
    s = searcher(model)
    first = await s._query_vector("How do I spawn a robot?")
    again = await s._query_vector("how do I  spawn a ROBOT?")  # same words as the model sees
    other = await s._query_vector("How do I delete a robot?")
    assert model.embedded == ["How do I spawn a robot?", "How do I delete a robot?"]
    assert first is again and other is not first
    await s.aclose()


async def test_the_cache_forgets_the_least_recently_asked() -> None:
    model = CountingEmbedder()
    s = searcher(model)
    await s._query_vector("question 0")
    for i in range(1, VECTOR_CACHE + 1):
        await s._query_vector(f"question {i}")
    assert len(s._vectors) == VECTOR_CACHE
    await s._query_vector("question 0")  # evicted: the oldest
    await s._query_vector(f"question {VECTOR_CACHE}")  # kept: the newest
    assert model.embedded.count("question 0") == 2
    assert model.embedded.count(f"question {VECTOR_CACHE}") == 1
    await s.aclose()


def test_gemini_keys_keep_case() -> None:
    from lectern_retrieval.embeddings import GeminiEmbedder

    assert GeminiEmbedder.query_key(None, "ROS Node") != GeminiEmbedder.query_key(None, "ros node")  # type: ignore[arg-type]


async def test_sorted_sub_batches_give_each_question_its_own_vector(
    embedder: LocalEmbedder,
) -> None:
    questions = [
        "What is a node?",
        "How do I bridge Gazebo topics to ROS 2 with a parameter file and remappings?",
        "spawn urdf",
        "Which QoS profile should a sensor topic use when the network drops packets?",
        "launch file",
        "How can I record a bag?",
        "What does colcon build --symlink-install do?",
        "tf2 static transform",
        "Why does my plugin not load in Gazebo Harmonic?",
        "rviz",
    ]
    together = await embedder.embed_queries(questions)
    alone = np.stack([embedder._encode([q])[0] for q in questions])
    assert together.shape == (len(questions), 384)
    # The same vector per question (padding only changes float rounding), in the input order.
    assert np.allclose(together, alone, atol=2e-3)
    assert all(int(np.argmax(together @ alone[i])) == i for i in range(len(questions)))
