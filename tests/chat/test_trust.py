"""Answers a reader can trust, through the gateway with the real google-genai client against
the fake Gemini: every citation checked against its source (supported, unsupported,
dangling) in `done` and in the stored conversation; a model that is rate-limited, failing or
silent before its first token replaced by a labelled extractive answer; a reader past the
daily token budget answered without any model call."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import httpx
import pytest

from lectern_dev.harness.books import ingest_book
from lectern_dev.harness.chat import ask, stored_answer
from lectern_dev.harness.services import fake_gemini_client, gateway_client, model_calls
from lectern_dev.stack import Stack

QUESTION = "What does an IMU measure on a walking humanoid?"
INVENTED = "Humanoids are tuned with a genetic algorithm that runs on the GPU overnight"


def first_sentence(passage: str) -> str:
    """A sentence of the passage as the model might repeat it (its first long one)."""
    flat = " ".join(re.sub(r"[#*`_>]", " ", passage).split())
    return next(s for s in re.split(r"(?<=[.!?])\s+", flat) if len(s) > 40).rstrip(".!?")


def test_each_citation_is_checked_in_done_and_in_the_stored_answer(
    chat: httpx.Client, fake: httpx.Client, book: dict
):
    # The chat searches the question as it is: the same search shows the passages it gets.
    found = chat.post("/api/search", json={"query": QUESTION, "top_k": 5}).json()["results"]
    assert len(found) == 5
    supported = first_sentence(found[0]["text"])
    reply = f"{supported} [1]. {INVENTED} [2]. Robots also dream of sheep [9]."
    fake.post("/_fake/config", json={"default_reply": reply})

    answer = ask(chat, {"message": QUESTION, "top_k": 5})
    done = answer.one("done")
    assert answer.text == reply
    assert done["citations"] == [1, 2]  # [9] names no source
    checks = done["citation_checks"]
    assert [(c["n"], c["supported"], c["dangling"]) for c in checks] == [
        (1, True, False),
        (2, False, False),
        (9, False, True),
    ]
    assert checks[0]["score"] >= 0.9 and checks[1]["score"] < 0.4 and checks[2]["score"] is None
    assert done["fallback"] is None and done["model"] != "extractive"
    assert isinstance(done["timings_ms"]["checks"], float)
    print("citation checks of this answer (ms):", done["timings_ms"]["checks"])

    stored = stored_answer(chat, answer, answer.guest)
    assert stored["citation_checks"] == checks
    assert stored["fallback"] is None


def stream_calls(fake: httpx.Client) -> list[dict]:
    return [r for r in model_calls(fake) if r["kind"] == "streamGenerateContent"]


@pytest.mark.parametrize(
    ("behaviour", "fallback", "calls"),
    [
        ({"fail_next": [429, 429, 429]}, "rate_limited", 3),
        ({"fail_next": [500, 500, 500]}, "unavailable", 3),
        ({"stall_after_chunks": 0}, "timeout", 1),
    ],
    ids=["429", "500", "no-first-token"],
)
def test_a_model_failing_before_its_first_token_gives_a_labelled_extractive_answer(
    chat: httpx.Client,
    fake: httpx.Client,
    book: dict,
    limits,
    behaviour: dict,
    fallback: str,
    calls: int,
):
    fake.post("/_fake/config", json=behaviour)
    answer = ask(chat, {"message": QUESTION})
    names = [e.event for e in answer.events]
    assert names[:2] == ["meta", "sources"] and names[-1] == "done"
    assert "error" not in names and "token" in names
    done = answer.one("done")
    assert (done["model"], done["fallback"], done["finish_reason"]) == (
        "extractive",
        fallback,
        "extractive",
    )
    assert "quotes the passages" in done["note"] and "Offline mode" not in answer.text
    assert done["citations"] and all(c["supported"] for c in done["citation_checks"])
    assert len(stream_calls(fake)) == calls  # the retries were spent first
    assert done["usage"]["attempts"] == calls
    if fallback == "timeout":  # not before the model's first-token timeout
        first = names.index("token")
        waited = answer.arrived[first] - answer.arrived[first - 1]
        assert waited >= limits.first_token_timeout_s - 0.5

    stored = stored_answer(chat, answer, answer.guest)
    assert stored["status"] == "complete" and stored["content"] == answer.text
    assert (stored["model"], stored["fallback"]) == ("extractive", fallback)


@pytest.fixture(scope="module")
def budget_stack(make_chat_stack: Callable[..., Stack]) -> Stack:
    """A stack whose readers may spend 1 model token a day: one answer spends it."""
    stack = make_chat_stack("budget", fake_gemini=True, extra_env={"CHAT_DAILY_TOKEN_BUDGET": "1"})
    ingest_book(stack)
    return stack


@pytest.fixture
def budget_gateway(budget_stack: Stack) -> Iterator[httpx.Client]:
    with gateway_client(budget_stack) as client:
        yield client


@pytest.fixture
def budget_fake(budget_stack: Stack) -> Iterator[httpx.Client]:
    with fake_gemini_client(budget_stack) as client:
        yield client


def test_answers_past_the_daily_budget_are_extractive_without_a_model_call(
    budget_gateway: httpx.Client, budget_fake: httpx.Client
):
    first = ask(budget_gateway, {"message": QUESTION})
    assert first.one("done")["fallback"] is None and first.one("done")["model"] != "extractive"
    assert len(model_calls(budget_fake)) == 1
    budget_fake.post("/_fake/reset")

    # The budget is the guest's address's: a new guest from it is past the budget too, and a
    # follow-up is not even rewritten by the model.
    second = ask(budget_gateway, {"message": "How does a lidar work in the dark?"})
    follow = ask(
        budget_gateway,
        {"message": "And a depth camera?", "conversation_id": second.meta["conversation_id"]},
        headers=second.guest,
    )
    assert model_calls(budget_fake) == []
    for answer in (second, follow):
        done = answer.one("done")
        assert answer.last.event == "done"
        assert (done["model"], done["fallback"]) == ("extractive", "budget")
        assert "allowance" in done["note"]
        assert stored_answer(budget_gateway, answer, second.guest)["fallback"] == "budget"
