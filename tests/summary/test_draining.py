"""SIGTERM while a translated chapter streams: the summary process starts no new stream (a
retryable 503), lets the open one finish within its grace period (`done`, and the text cached),
or at the grace's end ends it with a retryable `error` instead of the server's shutdown cutting
it without an event."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import httpx
import pytest

from lectern_dev.harness.replicas import Replica
from lectern_dev.harness.sse import Event, parse

STREAM = {"accept": "text/event-stream"}
NOTICE_S = 1.0


def translate_through_sigterm(replica: Replica, chapter: dict) -> tuple[list[Event], float, int]:
    """Stream a translation, send SIGTERM after the first piece, read to the end; the events,
    how long after the signal the process exited, and what a new stream got meanwhile."""
    url = f"/api/summary/chapters/{chapter['id']}/translation"
    with replica.client(timeout=60) as client:
        with client.stream("POST", url, json={"language": "es"}, headers=STREAM) as response:
            assert response.status_code == 200
            events = parse(response.iter_lines())
            seen = []
            for event in events:
                seen.append(event)
                if event.event == "token":
                    break
            signalled = time.monotonic()
            replica.process.popen.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            refused = client.post(url, json={"language": "de"}, headers=STREAM)
            assert refused.headers.get("retry-after") == "1", refused.headers
            seen.extend(events)
    replica.process.popen.wait(60)
    return seen, time.monotonic() - signalled, refused.status_code


@pytest.mark.parametrize(("grace_s", "ends_with"), [(15, "done"), (2, "error")])
def test_a_stream_open_at_sigterm_ends_with_an_event(
    replica_factory: Callable[..., Replica],
    fake_gemini: httpx.Client,
    chapter: dict,
    grace_s: int,
    ends_with: str,
    stored,
    stack,
):
    # About 6 s of pieces: shorter than the long grace, longer than the short one.
    fake_gemini.post(
        "/_fake/config",
        json={
            "default_reply": " ".join(f"palabra{i}" for i in range(60)),
            "words_per_chunk": 1,
            "token_interval_ms": 100,
        },
    )
    replica = replica_factory(
        f"summary-drain-{grace_s}",
        SHUTDOWN_GRACE_S=str(grace_s),
        DRAIN_NOTICE_S=str(NOTICE_S),
    )
    events, exited_after, refused = translate_through_sigterm(replica, chapter)
    assert refused == 503
    assert events[-1].event == ends_with, [e.event for e in events]
    assert exited_after < grace_s + NOTICE_S + 5
    if ends_with == "done":
        assert "palabra59" in "".join(e.data["text"] for e in events if e.event == "token")
        assert [r["kind"] for r in stored(stack, chapter["id"])] == ["translation"]
    else:
        assert events[-1].data["code"] == "shutting_down"
        assert events[-1].data["retryable"] is True
        # The generation itself gets a few more seconds at shutdown: what is cached, if
        # anything, is the whole text, never half of it.
        for row in stored(stack, chapter["id"]):
            assert "palabra59" in row["body"], row["body"][-200:]
