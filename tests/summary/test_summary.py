"""Chapter summaries through the gateway: generated once with the real google-genai client (against
the fake Gemini), served from Postgres after that, one model call for many concurrent requests
across two replicas, regenerated when the chapter changes, and never cached when the model fails."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from lectern_dev.harness.books import chapter_id_of, ingest, ingest_book
from lectern_dev.harness.database import run_sql
from lectern_dev.harness.polling import wait_until
from lectern_dev.harness.replicas import Replica
from lectern_dev.harness.services import model_calls
from lectern_dev.stack import Stack


def outcome_count(stack: Stack, kind: str, outcome: str) -> float:
    """lectern_summary_outcomes_total{kind, outcome} on the gateway's summary replica."""
    text = httpx.get(f"{stack.config.url('summary')}/metrics").text
    line = f'lectern_summary_outcomes_total{{kind="{kind}",outcome="{outcome}"}} '
    return next((float(row[len(line) :]) for row in text.splitlines() if row.startswith(line)), 0.0)


def test_second_request_is_served_from_the_cache(
    gateway: httpx.Client, fake_gemini, chapter, stack: Stack, stored
):
    url = f"/api/summary/chapters/{chapter['id']}"
    before = {o: outcome_count(stack, "summary", o) for o in ("generated", "cached")}
    first = gateway.get(url)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["chapter_id"] == chapter["id"]
    assert body["cached"] is False
    assert body["model"] == "gemini-2.5-flash"
    assert body["summary"].startswith("This is the fake model's answer")
    calls = model_calls(fake_gemini)
    assert len(calls) == 1
    # The model was given the chapter, and asked for this chapter's summary.
    assert chapter["title"] in calls[0]["prompt"]

    second = gateway.get(url)
    assert second.status_code == 200
    again = second.json()
    assert again["cached"] is True
    assert again["summary"] == body["summary"]
    assert again["generated_at"] == body["generated_at"]
    assert len(model_calls(fake_gemini)) == 1
    [row] = stored(stack, chapter["id"])
    assert (row["kind"], row["body"], row["hit_count"]) == ("summary", body["summary"], 1)
    # The service's metrics tell the same story (cost control is watched there).
    assert outcome_count(stack, "summary", "generated") == before["generated"] + 1
    assert outcome_count(stack, "summary", "cached") == before["cached"] + 1


def test_fifty_concurrent_requests_across_two_replicas_make_one_model_call(
    gateway: httpx.Client, fake_gemini, chapter, replica: Replica
):
    # A slow model keeps the first generation in flight while the others arrive.
    fake_gemini.post("/_fake/config", json={"ttft_ms": 800})
    url = f"/api/summary/chapters/{chapter['id']}"
    barrier = threading.Barrier(50)
    with replica.client() as direct:

        def one(i: int) -> httpx.Response:
            barrier.wait()
            # Half go through the gateway (replica A), half straight to replica B.
            return gateway.get(url) if i % 2 else direct.get(url)

        with ThreadPoolExecutor(50) as pool:
            responses = list(pool.map(one, range(50)))
    assert [r.status_code for r in responses] == [200] * 50
    bodies = [r.json() for r in responses]
    assert len({b["summary"] for b in bodies}) == 1
    assert sum(not b["cached"] for b in bodies) == 1
    assert len(model_calls(fake_gemini)) == 1


def test_changed_chapter_is_generated_anew(
    gateway: httpx.Client, fake_gemini, stack: Stack, clean_cache, stored
):
    source, path = "summary-change", "guide/joints.md"
    chapter_id = chapter_id_of(source, path)
    ingest(stack, source, {path: "# Joints\n\nA revolute joint rotates about one axis.\n"})
    url = f"/api/summary/chapters/{chapter_id}"
    first = gateway.get(url).json()
    assert gateway.get(url).json()["cached"] is True
    [old_row] = stored(stack, chapter_id)

    ingest(stack, source, {path: "# Joints\n\nA prismatic joint slides along one axis.\n"})
    fake_gemini.post("/_fake/reset")
    changed = gateway.get(url)
    assert changed.status_code == 200
    assert changed.json()["cached"] is False
    assert changed.json()["generated_at"] > first["generated_at"]
    [call] = model_calls(fake_gemini)
    assert "prismatic" in call["prompt"] and "revolute" not in call["prompt"]
    # Only the entry for the current text is kept.
    [row] = stored(stack, chapter_id)
    assert row["content_hash"] != old_row["content_hash"]


def test_model_error_is_reported_and_not_cached(
    gateway: httpx.Client, fake_gemini, chapter, stack: Stack, stored
):
    fake_gemini.post("/_fake/config", json={"fail_next": [500, 500, 500]})
    url = f"/api/summary/chapters/{chapter['id']}"
    failed = gateway.get(url)
    assert failed.status_code == 502
    error = failed.json()["error"]
    assert error["code"] == "llm_unavailable"
    assert error["details"] == {"retryable": True}
    assert len(model_calls(fake_gemini)) == 3  # the client's retries, then the failure
    assert stored(stack, chapter["id"]) == []

    retried = gateway.get(url)
    assert retried.status_code == 200
    assert retried.json()["cached"] is False
    assert len(model_calls(fake_gemini)) == 4


def test_rate_limited_model_is_a_clear_retryable_error(
    gateway: httpx.Client, fake_gemini, chapter, stack: Stack, stored
):
    fake_gemini.post("/_fake/config", json={"fail_next": [429, 429, 429]})
    failed = gateway.get(f"/api/summary/chapters/{chapter['id']}")
    assert failed.status_code == 503
    assert failed.json()["error"]["code"] == "llm_rate_limited"
    assert stored(stack, chapter["id"]) == []


def test_waiters_share_the_holders_failure_without_calling_the_model(
    gateway: httpx.Client, fake_gemini, chapter, stack: Stack, stored
):
    # Three failures spread over the client's backoff keep the holder busy about 1.5 s.
    fake_gemini.post("/_fake/config", json={"fail_next": [500, 500, 500]})
    url = f"/api/summary/chapters/{chapter['id']}"
    barrier = threading.Barrier(10)

    def one(_: int) -> httpx.Response:
        barrier.wait()
        return gateway.get(url)

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(one, range(10)))
    assert {r.status_code for r in responses} == {502}
    assert {r.json()["error"]["code"] for r in responses} == {"llm_unavailable"}
    assert len(model_calls(fake_gemini)) == 3
    assert stored(stack, chapter["id"]) == []
    assert gateway.get(url).json()["cached"] is False


def test_model_timeout_gives_504_and_the_next_request_tries_again(
    fake_gemini, chapter, replica: Replica, stack: Stack, stored
):
    fake_gemini.post("/_fake/config", json={"ttft_ms": 4000})
    url = f"/api/summary/chapters/{chapter['id']}"
    with replica.client() as client:
        # A 504 before the model's 4 s reply: the replica's 2 s timeout (how soon after it:
        # bench/timeouts_bench.py).
        slow = client.get(url)
        assert slow.status_code == 504
        assert slow.json()["error"]["code"] == "llm_timeout"
        assert stored(stack, chapter["id"]) == []
        fake_gemini.post("/_fake/config", json={})
        retried = client.get(url)
    assert retried.status_code == 200
    assert retried.json()["cached"] is False


def test_waiting_is_bounded(gateway: httpx.Client, fake_gemini, chapter, replica_factory):
    impatient = replica_factory("summary-impatient", SUMMARY_WAIT_TIMEOUT_S="1")
    fake_gemini.post("/_fake/config", json={"ttft_ms": 3000})
    url = f"/api/summary/chapters/{chapter['id']}"
    with impatient.client() as client, ThreadPoolExecutor(1) as pool:
        slow = pool.submit(gateway.get, url)  # replica A generates, slowly
        wait_until(lambda: model_calls(fake_gemini), 10, message="the model was never called")
        waited = client.get(url)
        assert waited.status_code == 504
        assert waited.json()["error"]["code"] == "generation_pending"
        assert slow.result().status_code == 200
        later = client.get(url)
    assert later.status_code == 200 and later.json()["cached"] is True
    assert later.json()["summary"] == slow.result().json()["summary"]
    assert len(model_calls(fake_gemini)) == 1


def test_crashed_lock_holder_does_not_block_the_key(
    gateway: httpx.Client, fake_gemini, chapter, replica_factory, stack: Stack
):
    crashing = replica_factory("summary-crash", SUMMARY_LOCK_TTL_S="1")
    fake_gemini.post("/_fake/config", json={"ttft_ms": 3000})
    url = f"/api/summary/chapters/{chapter['id']}"
    with crashing.client() as client, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.get, url)
        wait_until(lambda: model_calls(fake_gemini), 10, message="the model was never called")
        crashing.process.popen.kill()  # the holder dies while the model works
        try:
            pending.result()
        except httpx.HTTPError:
            pass
    fake_gemini.post("/_fake/config", json={})
    response = gateway.get(url)
    assert response.status_code == 200
    assert response.json()["cached"] is False
    assert len(model_calls(fake_gemini)) == 2


def test_sample_book_chapters_are_summarised(
    gateway: httpx.Client, fake_gemini, stack: Stack, clean_cache
):
    ingest_book(stack)
    chapters = [
        c for c in gateway.get("/api/chapters").json()["chapters"] if c["id"].startswith("book--")
    ]
    assert chapters
    response = gateway.get(f"/api/summary/chapters/{chapters[0]['id']}")
    assert response.status_code == 200, response.text
    assert response.json()["cached"] is False
    assert chapters[0]["title"] in model_calls(fake_gemini)[0]["prompt"]


def test_unknown_and_malformed_chapters(gateway: httpx.Client, fake_gemini):
    missing = gateway.get("/api/summary/chapters/no-such-chapter")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    malformed = gateway.get("/api/summary/chapters/Bad%20Id")
    assert malformed.status_code == 422
    assert model_calls(fake_gemini) == []


def test_cache_rows_count_hits(gateway: httpx.Client, fake_gemini, chapter, stack: Stack):
    url = f"/api/summary/chapters/{chapter['id']}"
    for _ in range(4):
        assert gateway.get(url).status_code == 200
    [row] = run_sql(
        stack.database_url,
        """SELECT hit_count, last_access_at > generated_at AS touched
                              FROM summary.generations WHERE chapter_id = $1""",
        chapter["id"],
    )
    assert row == {"hit_count": 3, "touched": True}


def test_long_chapter_is_summarised_in_parts_within_the_input_budget(
    fake_gemini, long_chapter, replica_factory, stack: Stack, stored
):
    chapter = long_chapter
    budget = 6000
    assert len(chapter["text"]) > 3 * budget
    small = replica_factory("summary-small-budget", SUMMARY_INPUT_BUDGET_CHARS=str(budget))
    with small.client() as client:
        response = client.get(f"/api/summary/chapters/{chapter['id']}")
    assert response.status_code == 200, response.text
    calls = model_calls(fake_gemini)
    notes, final = calls[:-1], calls[-1]
    assert len(notes) >= 3
    # Each part fits the budget (plus the instructions around it) and every part was read.
    assert all(len(c["prompt"]) < budget + 1000 for c in notes)
    assert {f"part {n} of {len(notes)}" for n in range(1, len(notes) + 1)} <= {
        line
        for c in notes
        for line in c["prompt"].replace("(", "\n").replace(")", "\n").splitlines()
    }
    assert "Part 1:" in final["prompt"] and f"Part {len(notes)}:" in final["prompt"]
    assert response.json()["summary"] == stored(stack, chapter["id"])[0]["body"]
