"""The authors' insights (`GET /api/admin/insights`) through the gateway: uncovered questions
grouped with counts, down-rated answers with their comments, the questions each chapter was
cited for, the share of unsupported citations, CSV export, the period, and the admin
credential (a reader gets 403). Other tests share the stack, so each test asks questions with
its own marker word and compares counts before and after."""

from __future__ import annotations

import csv
import io
import json
import secrets
import uuid

import httpx
import pytest

from lectern_dev.harness.chat import ask
from lectern_dev.harness.database import run_sql
from lectern_dev.harness.readers import Reader, new_reader
from lectern_dev.harness.services import admin_headers
from lectern_dev.stack import Stack

INSIGHTS = "/api/admin/insights"
COVERED = "What does an IMU measure on a walking humanoid?"


def new_tag(prefix: str) -> str:
    """Words no other question uses, enough of them that questions of two tests never share
    most of their words (the insights would rightly group those as near-duplicates)."""
    return " ".join(f"{prefix}{secrets.token_hex(3)}" for _ in range(8))


def uncovered(tag: str) -> str:
    """A question the sample book does not answer (it never mentions micro-ROS or ESP32)."""
    return f"How do I flash micro-ROS onto an ESP32 {tag} board over UART?"


@pytest.fixture
def admin(stack: Stack) -> dict[str, str]:
    return admin_headers(stack)


@pytest.fixture(scope="module")
def reader(chat: httpx.Client) -> Reader:
    return new_reader(chat)


def insights(chat: httpx.Client, admin: dict, **params: object) -> dict:
    response = chat.get(INSIGHTS, params=params, headers=admin)
    assert response.status_code == 200, response.text
    return response.json()


def groups_with(data: dict, tag: str) -> list[dict]:
    return [g for g in data["uncovered"]["groups"] if tag in g["question"]]


def test_an_uncovered_question_asked_twice_is_one_group_with_count_2(
    chat: httpx.Client, fake: httpx.Client, book: dict, admin: dict
):
    tag = new_tag("zx")
    first = ask(chat, {"message": uncovered(tag)})
    assert first.one("sources")["coverage"]["verdict"] == "not_covered"
    # The same question again, another reader, worded a little differently.
    again = uncovered(tag).lower().replace("how do i", "how can i").rstrip("?")
    ask(chat, {"message": again})
    other = f"Which {tag} quantum battery does the robot run on?"
    assert ask(chat, {"message": other}).one("sources")["coverage"]["verdict"] == "not_covered"

    data = insights(chat, admin, days=1)
    grouped = groups_with(data, tag)
    assert sorted(g["count"] for g in grouped) == [1, 2]
    pair = next(g for g in grouped if g["count"] == 2)
    assert pair["readers"] == 2 and set(pair["variants"]) == {uncovered(tag), again}
    assert pair["question"] == again  # the most recent wording leads the group
    assert pair["query"] == again  # what the book was searched for
    assert next(g for g in grouped if g["count"] == 1)["question"] == other


def test_a_down_rated_answer_is_listed_with_its_comment(
    chat: httpx.Client, fake: httpx.Client, book: dict, admin: dict, reader: Reader
):
    answer = ask(chat, {"message": COVERED}, headers=reader.headers)
    message_id = answer.meta["message_id"]
    comment = f"It never says which topic the IMU publishes on ({secrets.token_hex(3)})"
    rated = chat.post(
        f"/api/chat/messages/{message_id}/feedback",
        json={"rating": "down", "comment": comment},
        headers=reader.headers,
    )
    assert rated.status_code == 200

    response = chat.get(INSIGHTS, params={"days": 7}, headers=admin)
    listed = [d for d in response.json()["down_rated"] if d["message_id"] == message_id]
    assert len(listed) == 1
    (item,) = listed
    assert item["comment"] == comment and item["question"] == COVERED
    assert item["answer"] == answer.text[:500]
    assert item["chapters"]  # the chapters its citations point at
    # The reader is an opaque id: never their user id, email or credential.
    assert len(item["reader"]) == 16 and int(item["reader"], 16) >= 0
    for identity in (reader.user_id, reader.email, reader.session_token):
        assert identity not in response.text


def test_each_chapter_counts_the_questions_that_cited_it(
    chat: httpx.Client, fake: httpx.Client, book: dict, admin: dict
):
    def cited(data: dict) -> dict[str, int]:
        return {c["chapter_id"]: c["questions"] for c in data["chapters"]}

    before = cited(insights(chat, admin, days=1))
    answer = ask(chat, {"message": COVERED})
    assert answer.one("done")["citations"] == [1]  # the fake cites the first source
    chapter = answer.one("sources")["sources"][0]["chapter_id"]
    after = cited(insights(chat, admin, days=1))
    assert after[chapter] == before.get(chapter, 0) + 1


def test_the_share_of_unsupported_citations(
    chat: httpx.Client, fake: httpx.Client, book: dict, admin: dict, stack: Stack
):
    before = insights(chat, admin, days=1)["citations"]
    answer = ask(chat, {"message": COVERED})
    # The checks the citation checker stores with an answer (issue 15): one per marker.
    checks = [
        {"n": 1, "supported": True, "score": 0.8},
        {"n": 2, "supported": False, "score": 0.1},
        {"n": 3, "supported": True, "score": 0.7},
    ]
    assert stack.database_url
    run_sql(
        stack.database_url,
        "UPDATE chat.messages SET citation_checks = $2::jsonb WHERE id = $1",
        uuid.UUID(answer.meta["message_id"]),
        json.dumps(checks),
    )
    after = insights(chat, admin, days=1)["citations"]
    assert after["checked"] == before["checked"] + 3
    assert after["unsupported"] == before["unsupported"] + 1
    assert after["share"] == round(after["unsupported"] / after["checked"], 4)


def test_answers_outside_the_period_are_left_out(
    chat: httpx.Client, fake: httpx.Client, book: dict, admin: dict, stack: Stack
):
    tag = new_tag("old")
    answer = ask(chat, {"message": uncovered(tag)})
    assert stack.database_url
    run_sql(
        stack.database_url,
        "UPDATE chat.messages SET created_at = created_at - interval '40 days'"
        " WHERE conversation_id = $1",
        uuid.UUID(answer.meta["conversation_id"]),
    )
    assert groups_with(insights(chat, admin, days=30), tag) == []
    assert [g["count"] for g in groups_with(insights(chat, admin, days=60), tag)] == [1]
    assert insights(chat, admin)["period"]["days"] == 30  # the default period
    for days in (0, 366, "week"):
        assert chat.get(INSIGHTS, params={"days": days}, headers=admin).status_code == 422


def test_the_csv_export_parses(chat: httpx.Client, fake: httpx.Client, book: dict, admin: dict):
    tag = new_tag("csv")
    # A question that a spreadsheet would run as a formula if the cell were written as is.
    formula = f'=HYPERLINK("http://x") {uncovered(tag)}'
    ask(chat, {"message": uncovered(tag)})
    ask(chat, {"message": formula})

    response = chat.get(INSIGHTS, params={"days": 1, "format": "csv"}, headers=admin)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert {"section", "chapter_id", "text", "count", "comment"} <= set(rows[0])
    assert {r["section"] for r in rows} >= {"chapter", "uncovered", "unsupported_citations"}
    mine = [r for r in rows if r["section"] == "uncovered" and tag in r["text"]]
    assert [r["count"] for r in mine] == ["2"]  # the two wordings are one group
    # The newest wording leads the group: written so that it stays text.
    assert mine[0]["text"] == f"'{formula}"
    assert not any(r["text"].startswith("=") for r in rows)
    assert chat.get(INSIGHTS, params={"format": "xml"}, headers=admin).status_code == 422


def test_only_the_admin_credential_opens_the_insights(
    chat: httpx.Client, book: dict, reader: Reader
):
    # A signed-in reader, with each credential they hold: forbidden, never their data.
    for headers in (reader.headers, reader.jwt_headers):
        response = chat.get(INSIGHTS, headers=headers)
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "forbidden"
    assert chat.get(INSIGHTS, headers={"authorization": "Bearer not-the-token"}).status_code == 403
    anonymous = chat.get(INSIGHTS)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    csv_export = chat.get(INSIGHTS, params={"format": "csv"}, headers=reader.headers)
    assert csv_export.status_code == 403
    # The rest of /api/admin is still retrieval's.
    assert chat.post("/api/admin/search", json={"query": "imu"}).status_code == 401
