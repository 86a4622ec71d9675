"""How long a client waits when something upstream fails: each configured timeout or limit
against the time the error actually arrives, so a timeout that fires late (or never) shows
here instead of as a wall-clock bound in the functional tests.

    uv run --frozen python bench/timeouts_bench.py [--rounds 5]

It starts its own stack (random ports, a temporary folder, the fake Gemini) with short
timeouts, ingests the sample book, then measures, `--rounds` times each:

- `chat_first_token`: the model sends nothing; from `sources` to the first quote of the
  extractive fallback, against GEMINI_FIRST_TOKEN_TIMEOUT_S (tests/chat/test_trust.py checks
  the fallback);
- `chat_between_tokens`: the model stalls after one chunk; from that token to `error`, against
  GEMINI_BETWEEN_TOKENS_TIMEOUT_S (same test);
- `chat_answer_cut_off`: the model keeps talking; the whole answer, against CHAT_STREAM_MAX_S
  (tests/chat/test_lifetime.py);
- `summary_model_timeout`: a chapter summary whose model is slower than
  GEMINI_REQUEST_TIMEOUT_S (the same value in this stack); the request until its 504
  (tests/summary/test_summary.py);
- `chat_retrieval_down`: the retrieval service stopped; the question until its `error` event,
  against no timeout of its own (tests/chat/test_degraded.py).

Prints, per case, the configured value and the p50 and max of what was measured (seconds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from lectern_dev.harness.books import BOOK_DIR, chapter_id_of, ingest_book
from lectern_dev.harness.chat import ask
from lectern_dev.harness.services import fake_gemini_client, gateway_client, routed
from lectern_dev.stack import Ports, Stack, StackConfig

QUESTION = "What does an IMU measure on a walking humanoid?"
FIRST_TOKEN_S, BETWEEN_TOKENS_S, STREAM_MAX_S = 3.0, 2.0, 8.0
# The model client's timeouts are shared names, so summary's model calls end after as long.
SUMMARY_TIMEOUT_S = FIRST_TOKEN_S
ENV = {
    "EMBEDDINGS_PROVIDER": "local",  # so the fake's behaviour reaches the model call only
    "RATE_STREAM_PER_MIN": "100000",
    "RATE_STREAM_BURST": "10000",
    "RATE_API_PER_S": "10000",
    "RATE_API_BURST": "10000",
    "GEMINI_FIRST_TOKEN_TIMEOUT_S": str(FIRST_TOKEN_S),
    "GEMINI_BETWEEN_TOKENS_TIMEOUT_S": str(BETWEEN_TOKENS_S),
    "GEMINI_REQUEST_TIMEOUT_S": str(SUMMARY_TIMEOUT_S),
    "GEMINI_BACKOFF_BASE_S": "0.05",
    "CHAT_STREAM_MAX_S": str(STREAM_MAX_S),
}


def figures(configured_s: float | None, samples: list[float]) -> dict:
    return {
        "configured_s": configured_s,
        "p50_s": round(statistics.median(samples), 3),
        "max_s": round(max(samples), 3),
        "rounds": len(samples),
    }


def measure(rounds: int, once: Callable[[], float]) -> list[float]:
    return [once() for _ in range(rounds)]


def chat_error_gap(chat: httpx.Client, fake: httpx.Client, behaviour: dict) -> float:
    """Seconds between the last two events of an answer that must end in `error`."""
    fake.post("/_fake/reset")
    fake.post("/_fake/config", json=behaviour)
    answer = ask(chat, {"message": QUESTION}, timeout=120.0)
    if answer.last.event != "error":
        raise SystemExit(f"expected an error event, got {[e.event for e in answer.events]}")
    return answer.gap_before_last()


def chat_fallback_gap(chat: httpx.Client, fake: httpx.Client, behaviour: dict) -> float:
    """Seconds between `sources` and the first token of an answer whose model never sends a
    first token: the extractive fallback's first quote (`done.fallback` = timeout)."""
    fake.post("/_fake/reset")
    fake.post("/_fake/config", json=behaviour)
    answer = ask(chat, {"message": QUESTION}, timeout=120.0)
    if answer.last.event != "done" or answer.one("done").get("fallback") != "timeout":
        raise SystemExit(f"expected a timeout fallback, got {[e.event for e in answer.events]}")
    first = next(i for i, e in enumerate(answer.events) if e.event == "token")
    return answer.arrived[first] - answer.arrived[first - 1]


def whole_answer(chat: httpx.Client, fake: httpx.Client, behaviour: dict | None) -> float:
    if behaviour is not None:
        fake.post("/_fake/reset")
        fake.post("/_fake/config", json=behaviour)
    started = time.monotonic()
    answer = ask(chat, {"message": QUESTION}, timeout=120.0)
    if answer.last.event != "error":
        raise SystemExit(f"expected an error event, got {[e.event for e in answer.events]}")
    return time.monotonic() - started


def summary_timeout(chat: httpx.Client, fake: httpx.Client, chapter: str) -> float:
    fake.post("/_fake/reset")
    fake.post("/_fake/config", json={"ttft_ms": (SUMMARY_TIMEOUT_S + 3) * 1000})
    started = time.monotonic()
    response = chat.get(f"/api/summary/chapters/{chapter}", timeout=120.0)
    if response.status_code != 504:
        raise SystemExit(f"expected 504, got {response.status_code}: {response.text[:200]}")
    return time.monotonic() - started


def run(stack: Stack, rounds: int) -> dict:
    routed(stack)
    ingest_book(stack)
    chapter = chapter_id_of("book", sorted(BOOK_DIR.glob("*.md*"))[0].name)
    with gateway_client(stack, timeout=120.0) as chat, fake_gemini_client(stack) as fake:
        ask(chat, {"message": QUESTION})  # warm the embedder, pools and model client
        long_reply = {
            "token_interval_ms": 1000,
            "words_per_chunk": 2,
            "default_reply": "a topic carries messages " * 40,
        }
        results = {
            "chat_first_token": figures(
                FIRST_TOKEN_S,
                measure(rounds, lambda: chat_fallback_gap(chat, fake, {"stall_after_chunks": 0})),
            ),
            "chat_between_tokens": figures(
                BETWEEN_TOKENS_S,
                measure(rounds, lambda: chat_error_gap(chat, fake, {"stall_after_chunks": 1})),
            ),
            "chat_answer_cut_off": figures(
                STREAM_MAX_S, measure(rounds, lambda: whole_answer(chat, fake, long_reply))
            ),
            "summary_model_timeout": figures(
                SUMMARY_TIMEOUT_S, measure(rounds, lambda: summary_timeout(chat, fake, chapter))
            ),
        }
        fake.post("/_fake/reset")
        stack.processes["retrieval"].stop()
        results["chat_retrieval_down"] = figures(
            None, measure(rounds, lambda: whole_answer(chat, fake, None))
        )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lectern-timeouts-bench-") as tmp:
        config = StackConfig(
            data_dir=Path(tmp),
            ports=Ports.random(),
            fake_gemini=True,
            extra_env=ENV,
        )
        with Stack(config) as stack:
            results = run(stack, args.rounds)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
