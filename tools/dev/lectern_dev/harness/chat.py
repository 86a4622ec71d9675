"""Chat answers as a client sees them: `POST /api/chat/stream` and the resume route read event
by event, with when each arrived, plus what the conversation stored of an answer."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx

from lectern_dev.harness.polling import wait_until
from lectern_dev.harness.sse import Event, parse


@dataclass
class Answer:
    """A whole answer stream as the client saw it."""

    status: int
    headers: httpx.Headers
    events: list[Event] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)  # time.monotonic() of each event
    body: dict | None = None  # the JSON error envelope when the status is not 200

    def named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.event == name]

    def one(self, name: str) -> dict:
        found = self.named(name)
        assert len(found) == 1, f"expected one {name} event, got {[e.event for e in self.events]}"
        return found[0].data

    @property
    def text(self) -> str:
        return "".join(e.data["text"] for e in self.named("token"))

    @property
    def last(self) -> Event:
        return self.events[-1]

    @property
    def meta(self) -> dict:
        return self.one("meta")

    @property
    def guest(self) -> dict[str, str]:
        """The header that makes later calls come from the guest this answer created."""
        return {"x-guest-token": self.meta["guest_token"]}

    def gap_before_last(self) -> float:
        """Seconds between the last two events (e.g. the last token and the error)."""
        return self.arrived[-1] - self.arrived[-2]


def collect(response: httpx.Response, *, stop_after_tokens: int | None = None) -> Answer:
    answer = Answer(status=response.status_code, headers=response.headers)
    if response.status_code != 200:
        response.read()
        answer.body = response.json()
        return answer
    for event in parse(response.iter_lines()):
        answer.events.append(event)
        answer.arrived.append(time.monotonic())
        if stop_after_tokens is not None and len(answer.named("token")) >= stop_after_tokens:
            break
    return answer


def ask(
    client: httpx.Client,
    body: dict | str | bytes,
    *,
    headers: dict | None = None,
    stop_after_tokens: int | None = None,
    timeout: float = 60.0,
) -> Answer:
    """POST /api/chat/stream and read the events (all, or until some tokens arrived, after
    which the connection is closed like a reader leaving the page)."""
    kwargs: dict = {"json": body} if isinstance(body, dict) else {"content": body}
    with client.stream(
        "POST", "/api/chat/stream", headers=headers or {}, timeout=timeout, **kwargs
    ) as response:
        return collect(response, stop_after_tokens=stop_after_tokens)


def resume(
    client: httpx.Client,
    message_id: str,
    *,
    last_event_id: int | str | None,
    headers: dict | None = None,
    timeout: float = 60.0,
) -> Answer:
    headers = dict(headers or {})
    if last_event_id is not None:
        headers["last-event-id"] = str(last_event_id)
    with client.stream(
        "GET", f"/api/chat/messages/{message_id}/events", headers=headers, timeout=timeout
    ) as response:
        return collect(response)


def messages(client: httpx.Client, conversation_id: str, headers: dict) -> list[dict]:
    response = client.get(f"/api/chat/conversations/{conversation_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["messages"]


def stored_answer(client: httpx.Client, answer: Answer, headers: dict) -> dict:
    """The message the conversation stored for this answer."""
    meta = answer.meta
    return next(
        m
        for m in messages(client, meta["conversation_id"], headers)
        if m["id"] == meta["message_id"]
    )


def settled_answer(
    client: httpx.Client, answer: Answer, headers: dict, timeout_s: float = 30.0
) -> dict:
    """The stored answer once it is no longer `streaming` (it outlives its request)."""
    return wait_until(
        lambda: (m := stored_answer(client, answer, headers))["status"] != "streaming" and m,
        timeout_s,
        interval_s=0.2,
        message="the answer was never settled",
    )
