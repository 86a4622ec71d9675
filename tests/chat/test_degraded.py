"""Chat without a Gemini key (the labelled extractive answerer) and with the retrieval
service down (an error event, never a hang), each on a stack of its own."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import httpx
import pytest

from lectern_dev.harness.books import BOOK_DIR, ingest_book
from lectern_dev.harness.chat import ask
from lectern_dev.harness.services import gateway_client
from lectern_dev.stack import Stack


@pytest.fixture(scope="module")
def offline(make_chat_stack: Callable[..., Stack]) -> Iterator[httpx.Client]:
    """A stack with no API key at all (the default for `make run` without one)."""
    stack = make_chat_stack("chat-offline", fake_gemini=False)
    ingest_book(stack)
    with gateway_client(stack) as client:
        yield client


@pytest.fixture(scope="module")
def no_retrieval(make_chat_stack: Callable[..., Stack]) -> Iterator[httpx.Client]:
    stack = make_chat_stack(
        "chat-no-retrieval",
        fake_gemini=True,
        with_auth=False,
        services=("retrieval", "profile", "chat"),
    )
    stack.processes["retrieval"].stop()
    with gateway_client(stack) as client:
        yield client


def book_text() -> str:
    return " ".join(" ".join(p.read_text().split()) for p in BOOK_DIR.glob("*.md*"))


def test_offline_answer_quotes_the_book_and_says_so(offline: httpx.Client):
    answer = ask(offline, {"message": "What does an IMU measure?"})
    assert [e.event for e in answer.events][:2] == ["meta", "sources"]
    done = answer.one("done")
    assert done["model"] == "extractive" and done["finish_reason"] == "extractive"
    assert "no language model" in done["note"]
    assert answer.text.startswith(done["note"])  # the reader sees the label too
    sources = answer.one("sources")["sources"]
    assert done["citations"] and set(done["citations"]) <= {s["n"] for s in sources}
    # Every quoted line is a sentence of the book, followed by its source number.
    quoted = [line for line in answer.text.splitlines() if line.startswith("- ")]
    assert quoted
    text = book_text()
    for line in quoted:
        sentence, number = re.fullmatch(r"- (.+) \[(\d+)\]", line).groups()
        assert int(number) in done["citations"]
        assert sentence.rstrip(".")[:60].replace("`", "") in text.replace("`", "").replace("**", "")
    assert any("IMU" in line or "inertial" in line for line in quoted)


def test_offline_answer_admits_when_the_book_has_nothing(offline: httpx.Client):
    answer = ask(offline, {"message": "Which wine pairs well with sourdough pizza?"})
    done = answer.one("done")
    assert done["finish_reason"] == "not_covered"
    assert done["citations"] == []
    assert "does not seem to cover" in answer.text


def test_retrieval_down_gives_an_error_event_not_a_hang(no_retrieval: httpx.Client):
    # A hang would end in the client's read timeout (how soon the error comes instead:
    # bench/timeouts_bench.py).
    answer = ask(no_retrieval, {"message": "What does an IMU measure?"}, timeout=30.0)
    assert answer.status == 200
    assert [e.event for e in answer.events] == ["meta", "error"]
    error = answer.one("error")
    assert error["code"] == "retrieval_unavailable" and error["retryable"] is True
    conversation = no_retrieval.get(
        f"/api/chat/conversations/{answer.meta['conversation_id']}",
        headers={"x-guest-token": answer.meta["guest_token"]},
    ).json()
    assert conversation["messages"][1]["status"] == "failed"
    assert conversation["messages"][1]["error"]["code"] == "retrieval_unavailable"
