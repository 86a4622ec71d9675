"""Conversations, feedback and guest tokens: every id is owner-only (someone else's is 404),
deletion removes the messages, and the profile service can delete a reader's conversations."""

from __future__ import annotations

import httpx

from lectern_dev.harness.chat import ask
from lectern_dev.harness.services import internal_headers
from lectern_dev.stack import Stack

QUESTION = "What is a ROS 2 workspace?"


def test_guests_see_only_their_own_conversations(
    chat: httpx.Client, fake: httpx.Client, book: dict
):
    mine = ask(chat, {"message": QUESTION})
    theirs = ask(chat, {"message": "What is a launch file?"})
    me, them = mine.guest, theirs.guest
    conversation_id = mine.meta["conversation_id"]
    message_id = mine.meta["message_id"]

    listed = chat.get("/api/chat/conversations", headers=them).json()["conversations"]
    assert conversation_id not in {c["id"] for c in listed}
    assert chat.get(f"/api/chat/conversations/{conversation_id}", headers=them).status_code == 404
    assert (
        chat.delete(f"/api/chat/conversations/{conversation_id}", headers=them).status_code == 404
    )
    assert (
        chat.post(
            f"/api/chat/messages/{message_id}/feedback", json={"rating": "down"}, headers=them
        ).status_code
        == 404
    )
    follow = ask(chat, {"message": "more", "conversation_id": conversation_id}, headers=them)
    assert follow.status == 404
    # None of that touched it.
    conversation = chat.get(f"/api/chat/conversations/{conversation_id}", headers=me).json()
    assert len(conversation["messages"]) == 2
    assert conversation["messages"][1]["feedback"] is None


def test_a_guest_continues_a_conversation_with_its_token(
    chat: httpx.Client, fake: httpx.Client, book: dict
):
    first = ask(chat, {"message": QUESTION})
    headers = first.guest
    second = ask(
        chat,
        {
            "message": "Which folder holds the sources?",
            "conversation_id": first.meta["conversation_id"],
        },
        headers=headers,
    )
    assert second.last.event == "done"
    assert second.meta["conversation_id"] == first.meta["conversation_id"]
    # A new conversation by the same guest keeps the same token.
    third = ask(chat, {"message": "What is colcon?"}, headers=headers)
    assert "guest_token" not in third.meta
    listed = chat.get("/api/chat/conversations", headers=headers).json()["conversations"]
    assert [c["id"] for c in listed] == [
        third.meta["conversation_id"],
        first.meta["conversation_id"],
    ]
    assert [c["message_count"] for c in listed] == [2, 4]


def test_deleting_a_conversation_removes_it_and_its_events(
    chat: httpx.Client, fake: httpx.Client, book: dict
):
    answer = ask(chat, {"message": QUESTION})
    headers = answer.guest
    conversation_id = answer.meta["conversation_id"]
    response = chat.delete(f"/api/chat/conversations/{conversation_id}", headers=headers)
    assert response.status_code == 204
    url = f"/api/chat/conversations/{conversation_id}"
    assert chat.get(url, headers=headers).status_code == 404
    assert chat.get("/api/chat/conversations", headers=headers).json() == {"conversations": []}
    events = chat.get(f"/api/chat/messages/{answer.meta['message_id']}/events", headers=headers)
    assert events.status_code == 404
    assert (
        chat.delete(f"/api/chat/conversations/{conversation_id}", headers=headers).status_code
        == 404
    )


def test_feedback_is_stored_and_validated(chat: httpx.Client, fake: httpx.Client, book: dict):
    answer = ask(chat, {"message": QUESTION})
    headers = answer.guest
    message_id = answer.meta["message_id"]
    url = f"/api/chat/messages/{message_id}/feedback"

    response = chat.post(url, json={"rating": "up", "comment": "clear, thanks"}, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"message_id": message_id, "rating": "up", "comment": "clear, thanks"}
    assert chat.post(url, json={"rating": "down"}, headers=headers).status_code == 200
    conversation = chat.get(
        f"/api/chat/conversations/{answer.meta['conversation_id']}", headers=headers
    ).json()
    question, reply = conversation["messages"]
    assert (reply["feedback"], reply["feedback_comment"]) == ("down", None)

    for bad in (
        {"rating": "meh"},
        {"rating": "up", "comment": "x" * 1001},
        {},
        {"rating": "up", "extra": 1},
    ):
        assert chat.post(url, json=bad, headers=headers).status_code == 422
    # Feedback is for answers: the question's id is not one.
    assert (
        chat.post(
            f"/api/chat/messages/{question['id']}/feedback", json={"rating": "up"}, headers=headers
        ).status_code
        == 404
    )


def test_internal_route_deletes_a_readers_conversations(chat_stack: Stack, book: dict):
    user_id = "reader-internal-delete"
    chat_url = chat_stack.config.url("chat")
    body = {"message": QUESTION}
    with httpx.Client(
        base_url=chat_url, timeout=30.0, headers=internal_headers(chat_stack, user_id)
    ) as direct:
        # As the gateway would forward a signed-in reader's requests.
        for _ in range(2):
            with direct.stream("POST", "/api/chat/stream", json=body) as response:
                assert response.status_code == 200
                response.read()
        assert len(direct.get("/api/chat/conversations").json()["conversations"]) == 2
        deleted = direct.delete(f"/internal/readers/{user_id}/conversations")
        assert deleted.status_code == 200 and deleted.json() == {"deleted": 2}
        assert direct.get("/api/chat/conversations").json() == {"conversations": []}
        again = direct.delete(f"/internal/readers/{user_id}/conversations")
        assert again.json() == {"deleted": 0}
        assert direct.delete("/internal/readers/bad%20id/conversations").status_code == 422
    # Without the internal token the route is refused, and the gateway does not route it.
    assert httpx.delete(f"{chat_url}/internal/readers/{user_id}/conversations").status_code == 401
    gateway = httpx.delete(f"{chat_stack.gateway_url}/internal/readers/{user_id}/conversations")
    assert gateway.status_code == 404
