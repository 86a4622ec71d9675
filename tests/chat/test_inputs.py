"""Bad input to the chat API is refused at the edge with the error envelope, never a crash."""

from __future__ import annotations

import uuid

import httpx
import pytest

from lectern_dev.harness.chat import ask


def error_of(response: httpx.Response) -> dict:
    assert response.headers["content-type"].startswith("application/json")
    return response.json()["error"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"message": ""}, "message"),
        ({"message": "   \n "}, "message"),
        ({"message": "x" * 4001}, "message"),
        ({}, "message"),
        ({"message": "hi", "top_k": 0}, "top_k"),
        ({"message": "hi", "top_k": 11}, "top_k"),
        ({"message": "hi", "selected_text": "y" * 8001}, "selected_text"),
        ({"message": "hi", "conversation_id": "not-a-uuid"}, "conversation_id"),
        ({"message": "hi", "chapter_id": "../etc/passwd"}, "chapter_id"),
        ({"message": "hi", "mode": "admin"}, "mode"),
    ],
)
def test_invalid_stream_requests_are_422(chat: httpx.Client, body: dict, field: str):
    answer = ask(chat, body)
    assert answer.status == 422
    error = answer.body["error"]
    assert error["code"] == "validation_error"
    assert field in {d["field"] for d in error["details"]}


def test_megabyte_message_is_413(chat: httpx.Client):
    answer = ask(chat, {"message": "x" * 1_000_000})
    assert answer.status == 413
    assert answer.body["error"]["code"] == "payload_too_large"
    assert answer.body["error"]["request_id"]


def test_invalid_json_is_400(chat: httpx.Client):
    answer = ask(chat, b'{"message": "unterminated', headers={"content-type": "application/json"})
    assert answer.status == 400
    assert answer.body["error"]["code"] == "invalid_json"


def test_unknown_conversation_is_404(chat: httpx.Client):
    answer = ask(chat, {"message": "hi", "conversation_id": str(uuid.uuid4())})
    assert answer.status == 404
    assert answer.body["error"]["code"] == "not_found"


def test_malformed_guest_token_is_401(chat: httpx.Client):
    response = chat.get("/api/chat/conversations", headers={"x-guest-token": "guess"})
    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_guest_token"
    unknown = "A" * 43  # well formed, never issued
    response = chat.get("/api/chat/conversations", headers={"x-guest-token": unknown})
    assert response.status_code == 401


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/api/chat/conversations/not-a-uuid"),
        ("DELETE", "/api/chat/conversations/12345"),
        ("GET", "/api/chat/messages/nope/events"),
        ("POST", "/api/chat/messages/nope/feedback"),
    ],
)
def test_non_uuid_ids_are_422(chat: httpx.Client, method: str, path: str):
    response = chat.request(method, path, json={"rating": "up"})
    assert response.status_code == 422
    assert error_of(response)["code"] == "validation_error"


def test_conversation_routes_without_identity(chat: httpx.Client):
    # A guest without a token owns nothing: an empty list, and 404 for any id.
    assert chat.get("/api/chat/conversations").json() == {"conversations": []}
    some_id = uuid.uuid4()
    assert chat.get(f"/api/chat/conversations/{some_id}").status_code == 404
    assert chat.delete(f"/api/chat/conversations/{some_id}").status_code == 404
    assert (
        chat.post(f"/api/chat/messages/{some_id}/feedback", json={"rating": "up"}).status_code
        == 404
    )
    assert chat.get(f"/api/chat/messages/{some_id}/events").status_code == 404
