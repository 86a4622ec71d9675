"""Bad search input gets a clear 4xx naming the field, and leaves the index as it was."""

from __future__ import annotations

import httpx
import pytest

from lectern_dev.harness.books import ingest_book
from lectern_dev.harness.services import internal_headers
from lectern_dev.stack import Stack


@pytest.fixture(scope="module")
def chapters_before(stack: Stack, gateway: httpx.Client) -> list[dict]:
    ingest_book(stack)
    return gateway.get("/api/chapters").json()["chapters"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "   \n\t "}, "query"),
        ({"query": "x" * 20_000}, "query"),  # over the limit, under the body cap (413)
        ({"query": "x" * 2001}, "query"),
        ({"query": "walking", "top_k": 0}, "top_k"),
        ({"query": "walking", "top_k": 1000}, "top_k"),
        ({"query": "walking", "top_k": 11}, "top_k"),
        ({"query": "walking", "top_k": "many"}, "top_k"),
        ({"query": "walking", "chapter_id": "../../etc"}, "chapter_id"),
        ({"query": 42}, "query"),
        ({}, "query"),
    ],
)
def test_bad_search_is_422_with_the_field(
    gateway: httpx.Client, chapters_before: list[dict], body: dict, field: str
) -> None:
    response = gateway.post("/api/search", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in [d["field"] for d in error["details"]]
    assert gateway.get("/api/chapters").json()["chapters"] == chapters_before


def test_not_json_is_400(gateway: httpx.Client, chapters_before: list[dict]) -> None:
    response = gateway.post(
        "/api/search", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_query_of_2000_chars_is_accepted(
    gateway: httpx.Client, chapters_before: list[dict]
) -> None:
    response = gateway.post("/api/search", json={"query": "balance " * 250, "top_k": 1})
    assert response.status_code == 200
    assert len(response.json()["results"]) == 1


def test_internal_search_caps(stack: Stack, chapters_before: list[dict]) -> None:
    url = f"{stack.config.url('retrieval')}/internal/search"
    headers = internal_headers(stack)
    assert httpx.post(url, json={"query": "robot", "top_k": 51}, headers=headers).status_code == 422
    assert (
        httpx.post(url, json={"query": "robot", "mode": "magic"}, headers=headers).status_code
        == 422
    )
    for mode in ("dense", "lexical", "hybrid"):
        response = httpx.post(
            url, json={"query": "zero moment point", "top_k": 3, "mode": mode}, headers=headers
        )
        assert response.status_code == 200
        assert response.json()["results"][0]["chapter_id"] == "book--08-humanoid-locomotion"


def test_query_without_words_returns_dense_results_only(
    gateway: httpx.Client, chapters_before: list[dict]
) -> None:
    response = gateway.post("/api/search", json={"query": "?!… ——", "top_k": 3})
    assert response.status_code == 200
    assert len(response.json()["results"]) == 3
