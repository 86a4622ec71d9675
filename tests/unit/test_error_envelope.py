"""The shared app's edges in-process: an unhandled error is the 500 envelope with its request id
(logged once), a body over the cap is a 413 envelope however it is sent, and client text the
stores cannot take is refused by the one check every request model uses."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import httpx
import pytest
import structlog
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from lectern_common import middleware
from lectern_common.app import build_app
from lectern_common.contracts import storable_text
from lectern_common.errors import ApiError
from lectern_common.health import Check
from lectern_common.settings import ServiceSettings

REQUEST_ID = "test-request-0001"


class Echo(BaseModel):
    text: str


class NoStores:
    """A service that opens nothing (the middleware under test needs no store)."""

    def checks(self) -> dict[str, Check]:
        return {}


async def open_nothing(_: AsyncExitStack) -> NoStores:
    return NoStores()


class RecordingLog:
    """Stands in for the middleware's logger: the events it logged, with their fields."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))

    def exception(self, event: str, **fields: Any) -> None:
        self.events.append((event, {**fields, "exc_info": sys.exc_info()[1]}))


@pytest.fixture(autouse=True)
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingLog]:
    """The middleware's log lines; the logging set-up build_app changes is put back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    recording = RecordingLog()
    monkeypatch.setattr(middleware, "log", recording)
    yield recording
    structlog.reset_defaults()
    root.handlers, root.level = handlers, level
    logging.getLogger("uvicorn.access").disabled = False


def make_app() -> FastAPI:
    settings = ServiceSettings(service_name="test", log_json=True, max_body_bytes=1024)
    app = build_app(settings, title="test", open_state=open_nothing)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    @app.get("/postgres-gone")
    async def postgres_gone() -> None:
        raise asyncpg.CannotConnectNowError("the database system is starting up")

    @app.get("/postgres-lost")
    async def postgres_lost() -> None:
        # What a pooled connection raised after a PostgreSQL restart in the fault suite.
        raise asyncpg.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        )

    @app.get("/postgres-refused")
    async def postgres_refused() -> None:
        raise ConnectionRefusedError(111, "Connection refused")  # asyncpg's connect, as it is

    @app.get("/busy")
    async def busy() -> None:
        raise ApiError(429, "too_many_things", "slow down")

    @app.get("/busy-http")
    async def busy_http() -> None:
        raise HTTPException(429)

    @app.post("/echo")
    async def echo(body: Echo) -> Echo:
        return body

    @app.post("/ignores-its-body")
    async def ignores() -> dict:
        return {}

    return app


@pytest.mark.parametrize("path", ["/postgres-gone", "/postgres-lost", "/postgres-refused"])
async def test_a_database_that_is_away_is_a_503_not_a_500(path: str) -> None:
    response = await call(make_app(), "GET", path, headers={"x-request-id": REQUEST_ID})
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "dependency_unavailable"
    assert error["request_id"] == REQUEST_ID
    assert "starting up" not in error["message"]  # the server's own text stays in the log


@pytest.mark.parametrize("path", ["/busy", "/busy-http"])
async def test_every_429_says_when_to_come_back(path: str) -> None:
    response = await call(make_app(), "GET", path)
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["error"]["code"] in ("too_many_things", "rate_limited")


async def call(app: FastAPI, method: str, path: str, **kwargs: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, **kwargs)  # type: ignore[arg-type]


async def test_an_unhandled_error_is_the_500_envelope_with_its_request_id(
    recorded: RecordingLog,
):
    response = await call(make_app(), "GET", "/boom", headers={"x-request-id": REQUEST_ID})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == REQUEST_ID
    assert response.json() == {
        "error": {"code": "internal_error", "message": "internal error", "request_id": REQUEST_ID}
    }
    unhandled = [fields for event, fields in recorded.events if event == "request.unhandled"]
    assert len(unhandled) == 1
    assert isinstance(unhandled[0]["exc_info"], RuntimeError)
    assert ("http.request", {"method": "GET", "path": "/boom", "status": 500}) == (
        recorded.events[-1][0],
        {k: recorded.events[-1][1][k] for k in ("method", "path", "status")},
    )


def chunked(body: bytes) -> AsyncIterator[bytes]:
    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 100):
            yield body[start : start + 100]

    return pieces()


@pytest.mark.parametrize("path", ["/echo", "/ignores-its-body"])
@pytest.mark.parametrize("how", ["content-length", "chunked"])
async def test_a_body_over_the_cap_is_a_413_envelope(path: str, how: str):
    app = make_app()
    headers = {"content-type": "application/json"}
    body = json.dumps({"text": "x" * 2000}).encode()
    content = body if how == "content-length" else chunked(body)
    response = await call(app, "POST", path, content=content, headers=headers)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert response.json()["error"]["request_id"] == response.headers["x-request-id"]
    small = json.dumps({"text": "hi"}).encode()
    content = small if how == "content-length" else chunked(small)
    assert (await call(app, "POST", path, content=content, headers=headers)).status_code == 200


@pytest.mark.parametrize(
    "text, allowed",
    [
        ("plain text", True),
        ("tabs\tand\nnewlines\r\n", True),
        ("اردو اور عربی\u200f", True),
        ("emoji 😀", True),
        ("nul\x00", False),
        ("lone \ud800 surrogate", False),
        ("bell\x07", False),
        ("escape\x1b[31m", False),
        ("c1 \x85", False),
        ("right-to-left \u202e override", False),
        ("isolate \u2066", False),
    ],
)
def test_storable_text(text: str, allowed: bool):
    if allowed:
        assert storable_text(text) == text
    else:
        with pytest.raises(ValueError, match="U\\+"):
            storable_text(text)
