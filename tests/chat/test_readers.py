"""Signed-in readers (real Better Auth accounts through the gateway): answers adapted to the
profile, private conversations, claiming a guest's conversations after signing in, and the
conversations leaving with a deleted profile."""

from __future__ import annotations

import httpx
import pytest

from lectern_dev.harness.chat import ask
from lectern_dev.harness.readers import Reader, new_reader

QUESTION = "How do I read the IMU in ROS 2?"


@pytest.fixture(scope="module")
def reader(chat: httpx.Client) -> Reader:
    return new_reader(chat)


@pytest.fixture(scope="module")
def other_reader(chat: httpx.Client) -> Reader:
    return new_reader(chat)


def stream_prompt(fake: httpx.Client) -> str:
    requests = fake.get("/_fake/requests", params={"kind": "streamGenerateContent"}).json()
    return requests["requests"][-1]["prompt"]


def test_the_answer_follows_the_readers_profile(
    chat: httpx.Client, fake: httpx.Client, book: dict, reader: Reader
):
    profile = {
        "python_level": "beginner",
        "ros2_level": "none",
        "answer_depth": "brief",
        "hardware_access": "jetson",
        "goals": "build a walking robot",
    }
    assert chat.put("/api/profile/me", json=profile, headers=reader.headers).status_code == 200
    answer = ask(chat, {"message": QUESTION}, headers=reader.jwt_headers)
    assert answer.last.event == "done"
    assert "guest_token" not in answer.meta  # a reader needs none
    prompt = stream_prompt(fake)
    assert "Python beginner" in prompt and "ROS 2 none" in prompt
    assert "jetson" in prompt and "build a walking robot" in prompt
    assert "Answer briefly" in prompt

    profile["answer_depth"] = "detailed"
    chat.put("/api/profile/me", json=profile, headers=reader.headers)
    ask(chat, {"message": QUESTION}, headers=reader.headers)
    assert "Answer in detail" in stream_prompt(fake)


def test_a_readers_conversations_are_theirs_alone(
    chat: httpx.Client, fake: httpx.Client, book: dict, reader: Reader, other_reader: Reader
):
    answer = ask(chat, {"message": QUESTION}, headers=reader.headers)
    conversation_id = answer.meta["conversation_id"]
    mine = chat.get("/api/chat/conversations", headers=reader.headers).json()["conversations"]
    assert conversation_id in {c["id"] for c in mine}
    url = f"/api/chat/conversations/{conversation_id}"
    assert chat.get(url, headers=other_reader.headers).status_code == 404
    assert chat.get(url).status_code == 404  # anonymous
    assert chat.delete(url, headers=other_reader.headers).status_code == 404
    follow = ask(
        chat, {"message": "more", "conversation_id": conversation_id}, headers=other_reader.headers
    )
    assert follow.status == 404
    assert chat.get(url, headers=reader.headers).status_code == 200


def test_a_guest_who_signs_in_claims_their_conversations(
    chat: httpx.Client, fake: httpx.Client, book: dict, other_reader: Reader
):
    as_guest = ask(chat, {"message": QUESTION})
    token = as_guest.meta["guest_token"]
    conversation_id = as_guest.meta["conversation_id"]
    claimer = new_reader(chat)
    claim_url = "/api/chat/conversations/claim"

    # Without signing in, a guest cannot claim (not even their own token).
    assert chat.post(claim_url, headers={"x-guest-token": token}).status_code == 401
    claimed = chat.post(claim_url, headers={**claimer.headers, "x-guest-token": token})
    assert claimed.status_code == 200 and claimed.json() == {"claimed": 1}

    listed = chat.get("/api/chat/conversations", headers=claimer.headers).json()
    assert [c["id"] for c in listed["conversations"]] == [conversation_id]
    follow = ask(
        chat,
        {"message": "And the gyroscope?", "conversation_id": conversation_id},
        headers=claimer.headers,
    )
    assert follow.last.event == "done"
    # The token is spent: it no longer opens anything, and nobody can claim it again.
    assert chat.get("/api/chat/conversations", headers={"x-guest-token": token}).status_code == 401
    again = chat.post(claim_url, headers={**other_reader.headers, "x-guest-token": token})
    assert again.status_code == 404
    assert (
        chat.get(
            f"/api/chat/conversations/{conversation_id}", headers=other_reader.headers
        ).status_code
        == 404
    )
    missing = chat.post(claim_url, headers=claimer.headers)
    assert missing.status_code == 422


def test_deleting_the_profile_deletes_the_conversations(
    chat: httpx.Client, fake: httpx.Client, book: dict
):
    leaving = new_reader(chat)
    chat.put("/api/profile/me", json={"python_level": "advanced"}, headers=leaving.headers)
    ask(chat, {"message": QUESTION}, headers=leaving.headers)
    ask(chat, {"message": "What is a lidar?"}, headers=leaving.headers)
    deleted = chat.delete("/api/profile/me", headers=leaving.headers)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["conversations_deleted"] == 2
    listed = chat.get("/api/chat/conversations", headers=leaving.headers).json()
    assert listed == {"conversations": []}
