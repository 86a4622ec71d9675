"""Search, chapters and admin ingest of the sample book, through the gateway."""

from __future__ import annotations

import httpx
import pytest

from lectern_dev.harness.books import ingest_book, upload
from lectern_dev.harness.services import admin_headers, internal_headers
from lectern_dev.stack import Stack


@pytest.fixture(scope="module")
def book(stack: Stack) -> dict:
    return ingest_book(stack)


def test_book_ingest_summary_and_reingest_is_free(stack: Stack, book: dict) -> None:
    assert book["source"] == "book"
    assert book["files"] >= 8
    assert book["chunks"] >= book["files"]
    again = ingest_book(stack)
    assert again["unchanged"] == book["files"]
    assert again["new"] == again["updated"] == again["removed"] == 0
    assert again["embeddings_computed"] == 0
    assert again["chunks"] == book["chunks"]


def test_search_finds_the_right_chapter(gateway: httpx.Client, book: dict) -> None:
    response = gateway.post(
        "/api/search",
        json={"query": "what does the zero moment point tell a walking robot?", "top_k": 3},
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert 1 <= len(results) <= 3
    top = results[0]
    assert top["chapter_id"] == "book--08-humanoid-locomotion"
    assert top["source_path"] == "08-humanoid-locomotion.mdx"
    assert top["url"] == "/docs/08-humanoid-locomotion"
    assert top["title"] == "Humanoid Locomotion"
    assert "zero moment point" in top["text"].lower()
    assert set(top) == {
        "chunk_id",
        "chapter_id",
        "title",
        "section",
        "url",
        "source_path",
        "text",
        "score",
    }
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize(
    ("query", "verdict"),
    [
        ("what does the zero moment point tell a walking robot?", "covered"),
        # Names the sample book never mentions.
        ("Which UDP port does PX4 SITL use to exchange MAVLink with the simulator?", "not_covered"),
    ],
)
def test_search_returns_a_coverage_verdict(
    gateway: httpx.Client, stack: Stack, book: dict, query: str, verdict: str
) -> None:
    public = gateway.post("/api/search", json={"query": query, "top_k": 3})
    assert public.status_code == 200
    body = public.json()
    assert body["results"]  # the nearest passages, whatever the verdict
    assert body["coverage"]["verdict"] == verdict
    assert isinstance(body["coverage"]["score"], float)
    internal = httpx.post(
        f"{stack.config.url('retrieval')}/internal/search",
        json={"query": query, "top_k": 3},
        headers=internal_headers(stack),
    )
    assert internal.json()["coverage"] == body["coverage"]


def test_mdx_imports_and_jsx_are_stripped_code_kept(gateway: httpx.Client, book: dict) -> None:
    results = gateway.post(
        "/api/search",
        json={
            "query": "left knee revolute joint limits URDF",
            "top_k": 10,
            "chapter_id": "book--04-robot-description",
        },
    ).json()["results"]
    assert results and all(r["chapter_id"] == "book--04-robot-description" for r in results)
    text = "\n".join(r["text"] for r in results)
    assert '<joint name="left_knee" type="revolute">' in text
    assert "import Tabs" not in text and "<TabItem" not in text and "</Tabs>" not in text


def test_chapter_filter_limits_results(gateway: httpx.Client, book: dict) -> None:
    results = gateway.post(
        "/api/search",
        json={"query": "PID gains tuning", "top_k": 5, "chapter_id": "book--10-safety"},
    ).json()
    assert results["results"]
    assert {r["chapter_id"] for r in results["results"]} == {"book--10-safety"}


def test_unknown_chapter_filter_is_404(gateway: httpx.Client, book: dict) -> None:
    response = gateway.post("/api/search", json={"query": "walking", "chapter_id": "book--nope"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_chapters_list_and_internal_chapter(
    stack: Stack, gateway: httpx.Client, book: dict
) -> None:
    chapters = gateway.get("/api/chapters").json()["chapters"]
    ids = [c["id"] for c in chapters]
    assert "book--02-ros2-nodes" in ids
    nodes = next(c for c in chapters if c["id"] == "book--02-ros2-nodes")
    assert nodes == {
        "id": "book--02-ros2-nodes",
        "title": "Nodes, Topics and Services",
        "url": "/docs/02-ros2-nodes",
        "source_path": "02-ros2-nodes.md",
    }
    response = httpx.get(
        f"{stack.config.url('retrieval')}/internal/chapters/book--02-ros2-nodes",
        headers=internal_headers(stack),
    )
    assert response.status_code == 200
    chapter = response.json()
    assert chapter["source"] == "book"
    assert len(chapter["content_hash"]) == 64
    assert "create_publisher" in chapter["text"]
    assert "sidebar_position" not in chapter["text"]
    headings = [s["heading"] for s in chapter["sections"]]
    assert "Topics: continuous streams" in headings


def test_internal_routes_are_not_public(stack: Stack, gateway: httpx.Client, book: dict) -> None:
    assert gateway.get("/internal/chapters/book--02-ros2-nodes").status_code == 404
    direct = httpx.get(f"{stack.config.url('retrieval')}/internal/chapters/book--02-ros2-nodes")
    assert direct.status_code == 401


def test_unknown_chapter_is_404(stack: Stack) -> None:
    for chapter_id in ("book--missing", "NOT VALID"):
        response = httpx.get(
            f"{stack.config.url('retrieval')}/internal/chapters/{chapter_id}",
            headers=internal_headers(stack),
        )
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_internal_search_allows_larger_top_k(stack: Stack, book: dict) -> None:
    response = httpx.post(
        f"{stack.config.url('retrieval')}/internal/search",
        json={"query": "robot", "top_k": 30},
        headers=internal_headers(stack),
    )
    assert response.status_code == 200
    assert 10 < len(response.json()["results"]) <= 30


def test_admin_ingest_needs_the_admin_token(stack: Stack, gateway: httpx.Client) -> None:
    for headers in (
        {},
        {"authorization": "Bearer wrong"},
        {"authorization": f"Basic {stack.secrets['ADMIN_TOKEN']}"},
    ):
        response = upload(stack, "x", {"a.md": "# A\n\ntext"}, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
    assert "x--a" not in [c["id"] for c in gateway.get("/api/chapters").json()["chapters"]]
    assert admin_headers(stack)["authorization"].startswith("Bearer ")


def test_admin_search_scores_one_leg_only_for_the_admin(
    stack: Stack, gateway: httpx.Client, book: dict
) -> None:
    question = {"query": "what does the zero moment point tell a walking robot?", "top_k": 3}
    for headers in ({}, {"authorization": "Bearer wrong"}):
        refused = gateway.post(
            "/api/admin/search", json={**question, "mode": "dense"}, headers=headers
        )
        assert refused.status_code == 401
    for mode in ("lexical", "dense", "hybrid"):
        response = gateway.post(
            "/api/admin/search", json={**question, "mode": mode}, headers=admin_headers(stack)
        )
        assert response.status_code == 200
        assert response.json()["results"][0]["chapter_id"] == "book--08-humanoid-locomotion"
    # The mode is honoured: a word in no chapter finds nothing lexically, while the dense leg
    # always returns its nearest passages.
    nonsense = {"query": "qzxvbnmw", "top_k": 3}
    found = {
        mode: gateway.post(
            "/api/admin/search", json={**nonsense, "mode": mode}, headers=admin_headers(stack)
        ).json()["results"]
        for mode in ("lexical", "dense")
    }
    assert found["lexical"] == []
    assert len(found["dense"]) == 3
