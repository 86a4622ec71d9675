"""Redis away (stopped, or frozen so that it accepts connections and never answers): what needs
it answers 503 `dependency_unavailable` (an `error` event with `retryable: true` once a stream
has started), soon rather than after the client gives up; what does not need it keeps working;
and everything works again once Redis is back.

The stack here runs on a Redis server of its own, which the tests stop and freeze (never the
shared one)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis as redis_sync

from lectern_dev.harness.books import ingest_book
from lectern_dev.harness.chat import ask
from lectern_dev.harness.database import create_database, drop_database
from lectern_dev.harness.polling import wait_until
from lectern_dev.harness.readers import Reader, new_reader
from lectern_dev.harness.replicas import answers_200
from lectern_dev.harness.services import fake_gemini_client, gateway_client, routed
from lectern_dev.harness.sse import parse
from lectern_dev.stack import Ports, Process, Stack, StackConfig, free_port

QUESTION = "What does an IMU measure on a walking humanoid?"
# A request on a Redis that is gone must end well before this ("does not hang"); how soon is
# bounded by the client's timeouts (lectern_common/redis.py).
NO_HANG_S = 20.0
PROFILE = {"python_level": "beginner", "hardware_access": "simulation_only"}


class RedisServer:
    """A redis-server of this module's own on a free port, which it may stop, start, freeze
    (SIGSTOP: connections are accepted, nothing is answered) and thaw."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        venv_bin = str(Path(sys.executable).parent)
        binary = shutil.which("redis-server", path=venv_bin) or "redis-server"
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.folder)]
        self.process = Process(
            "own-redis", args, env=dict(os.environ), log=self.folder / "redis.log"
        )
        wait_until(self._answers, 15, message=lambda: f"redis did not start: {self._tail()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def _answers(self) -> bool:
        client = redis_sync.Redis.from_url(self.url, socket_timeout=1)
        with contextlib.suppress(redis_sync.RedisError), client:
            return bool(client.ping())
        return False

    def _tail(self) -> str:
        return self.process.tail() if self.process else ""

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        self.stop()
        try:
            yield
        finally:
            self.start()

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        assert self.process is not None
        os.kill(self.process.popen.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.process.popen.pid, signal.SIGCONT)


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("own-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_stack(
    own_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory, redis_prefix: str
) -> Iterator[Stack]:
    """A whole stack (fake Gemini, summary on the model) whose Redis is `own_redis`."""
    admin = os.environ.get("DATABASE_URL")
    database = asyncio.run(create_database(admin)) if admin else None
    config = StackConfig(
        data_dir=tmp_path_factory.mktemp("redis-stack"),
        ports=Ports.random(),
        database_url=database,
        redis_url=own_redis.url,
        redis_prefix=f"{redis_prefix}redis-down:",
        fake_gemini=True,
        extra_env={
            "EMBEDDINGS_PROVIDER": "local",
            "RATE_AUTH_PER_MIN": "6000",
            "RATE_AUTH_BURST": "1000",
            "RATE_SIGN_PER_MIN": "6000",
            "RATE_SIGN_BURST": "1000",
            "RATE_STREAM_PER_MIN": "100000",
            "RATE_STREAM_BURST": "10000",
            # The services without Redis, not the gateway: with its buckets in the Redis these
            # tests stop, Traefik refuses every limited route (docs/OPERATIONS.md, Limits).
            "GATEWAY_REDIS_ENDPOINTS": "",
        },
    )
    stack = Stack(config).start()
    try:
        ingest_book(routed(stack))
        yield stack
    finally:
        stack.stop()
        if admin and database:
            asyncio.run(drop_database(admin, database))


@pytest.fixture(scope="module")
def client(redis_stack: Stack) -> Iterator[httpx.Client]:
    with gateway_client(redis_stack, timeout=NO_HANG_S) as gateway:
        yield gateway


@pytest.fixture
def fake(redis_stack: Stack) -> Iterator[httpx.Client]:
    with fake_gemini_client(redis_stack) as fake_client:
        yield fake_client


@pytest.fixture(scope="module")
def reader(client: httpx.Client) -> Reader:
    reader = new_reader(client)
    assert client.put("/api/profile/me", headers=reader.headers, json=PROFILE).status_code == 200
    return reader


@pytest.fixture(scope="module")
def chapters(client: httpx.Client, redis_stack: Stack) -> list[str]:
    return [c["id"] for c in client.get("/api/chapters").json()["chapters"]]


@pytest.fixture(autouse=True)
def redis_back(redis_stack: Stack) -> Iterator[None]:
    """After each test, wait until the services use Redis again (their /ready checks it)."""
    yield
    for name in ("chat", "summary"):
        url = f"{redis_stack.config.url(name)}/ready"
        wait_until(lambda url=url: answers_200(url), 30, message=f"{name} not ready again")


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "dependency_unavailable"
    assert error["request_id"]
    assert "127.0.0.1" not in error["message"] and "Error" not in error["message"]
    assert response.headers["retry-after"]


def stream_events(
    client: httpx.Client, method: str, url: str, **kwargs: object
) -> tuple[int, list]:
    with client.stream(method, url, **kwargs) as response:  # type: ignore[arg-type]
        if response.status_code != 200:
            response.read()
            return response.status_code, [response.json()]
        return 200, list(parse(response.iter_lines()))


def test_chat_without_redis_is_503_for_readers_and_new_guests(
    client: httpx.Client, own_redis: RedisServer, reader: Reader
):
    def conversations() -> list[dict]:
        listed = client.get("/api/chat/conversations", headers=reader.headers)
        assert listed.status_code == 200
        return listed.json()["conversations"]

    before = conversations()
    with own_redis.stopped():
        guest = ask(client, {"message": QUESTION})
        assert guest.status == 503 and guest.body["error"]["code"] == "dependency_unavailable"
        assert guest.body["error"]["request_id"] and guest.headers["retry-after"]
        signed_in = ask(client, {"message": QUESTION}, headers=reader.headers)
        assert signed_in.status == 503
        assert signed_in.body["error"]["code"] == "dependency_unavailable"
        # Nothing half-made was stored: no conversation without an answer.
        assert conversations() == before
    assert ask(client, {"message": QUESTION}, headers=reader.headers).last.event == "done"


def test_a_frozen_redis_is_503_not_a_hang(
    client: httpx.Client, own_redis: RedisServer, chapters: list[str], reader: Reader
):
    with own_redis.frozen():
        guest = ask(client, {"message": QUESTION}, timeout=NO_HANG_S)
        assert guest.status == 503 and guest.body["error"]["code"] == "dependency_unavailable"
        assert_unavailable(client.get(f"/api/summary/chapters/{chapters[0]}"))
    assert ask(client, {"message": QUESTION}).last.event == "done"


def test_resume_without_redis_is_503(client: httpx.Client, own_redis: RedisServer):
    answer = ask(client, {"message": QUESTION})
    with own_redis.stopped():
        status, body = stream_events(
            client,
            "GET",
            f"/api/chat/messages/{answer.meta['message_id']}/events",
            headers=answer.guest,
        )
        assert status == 503 and body[0]["error"]["code"] == "dependency_unavailable"


def test_a_resumed_stream_that_loses_redis_ends_with_a_retryable_error(
    client: httpx.Client, own_redis: RedisServer, fake: httpx.Client
):
    fake.post(
        "/_fake/config",
        json={
            "default_reply": " ".join(f"word{i}" for i in range(40)),
            "words_per_chunk": 1,
            "token_interval_ms": 250,
        },
    )
    first = ask(client, {"message": QUESTION}, stop_after_tokens=1)
    with client.stream(
        "GET",
        f"/api/chat/messages/{first.meta['message_id']}/events",
        headers={**first.guest, "last-event-id": str(first.last.id)},
    ) as response:
        assert response.status_code == 200
        events = parse(response.iter_lines())
        assert next(events).event == "token"
        with own_redis.stopped():
            rest = list(events)
    assert rest, "the stream ended without a last event"
    assert rest[-1].event == "error"
    assert rest[-1].data["code"] == "dependency_unavailable"
    assert rest[-1].data["retryable"] is True


def test_uncached_summaries_without_redis_are_503(
    client: httpx.Client, own_redis: RedisServer, reader: Reader, chapters: list[str]
):
    chapter = chapters[1]
    with own_redis.stopped():
        assert_unavailable(client.get(f"/api/summary/chapters/{chapter}"))
        assert_unavailable(
            client.post(f"/api/summary/chapters/{chapter}/personalized", headers=reader.headers)
        )
        assert_unavailable(
            client.post(f"/api/summary/chapters/{chapter}/translation", json={"language": "ur"})
        )
        status, events = stream_events(
            client,
            "POST",
            f"/api/summary/chapters/{chapter}/translation",
            json={"language": "ur"},
            headers={"accept": "text/event-stream"},
        )
        assert status == 200
        assert [e.event for e in events] == ["meta", "error"]
        assert events[-1].data["code"] == "dependency_unavailable"
        assert events[-1].data["retryable"] is True
    assert client.get(f"/api/summary/chapters/{chapter}").status_code == 200


def test_what_does_not_need_redis_keeps_working(
    client: httpx.Client, own_redis: RedisServer, reader: Reader, chapters: list[str]
):
    chapter = chapters[2]
    assert client.get(f"/api/summary/chapters/{chapter}").status_code == 200
    answer = ask(client, {"message": QUESTION}, headers=reader.headers)
    other = ask(client, {"message": "How do ROS 2 nodes talk?"}, headers=reader.headers)
    conversation_id = answer.meta["conversation_id"]
    with own_redis.stopped():
        cached = client.get(f"/api/summary/chapters/{chapter}")
        assert cached.status_code == 200 and cached.json()["cached"] is True
        listed = client.get("/api/chat/conversations", headers=reader.headers)
        assert listed.status_code == 200
        assert conversation_id in {c["id"] for c in listed.json()["conversations"]}
        read = client.get(f"/api/chat/conversations/{conversation_id}", headers=reader.headers)
        assert read.status_code == 200 and read.json()["messages"][-1]["status"] == "complete"
        rated = client.post(
            f"/api/chat/messages/{answer.meta['message_id']}/feedback",
            headers=reader.headers,
            json={"rating": "up"},
        )
        assert rated.status_code == 200
        deleted = client.delete(
            f"/api/chat/conversations/{other.meta['conversation_id']}", headers=reader.headers
        )
        assert deleted.status_code == 204
        found = client.post("/api/search", json={"query": QUESTION, "top_k": 3})
        assert found.status_code == 200 and found.json()["results"]
        assert client.get("/api/chapters").status_code == 200
        profile = client.get("/api/profile/me", headers=reader.headers)
        assert profile.status_code == 200 and profile.json()["python_level"] == "beginner"
        saved = client.put("/api/profile/me", headers=reader.headers, json={"goals": "walk"})
        assert saved.status_code == 200
