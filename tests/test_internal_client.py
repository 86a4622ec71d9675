"""The internal HTTP client against a real local server: what it sends, what it retries and
what it never waits on forever. No stack: a small aiohttp server plays the other service."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web

from lectern_common.context import request_id_var
from lectern_common.http import InternalClient, RecentFirstConnector, ServiceUnavailable
from lectern_common.trust import AssertionSigner


class Service:
    """Counts the requests it gets; each route behaves as the test needs."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.seen: list[dict] = []

    def count(self, name: str) -> int:
        self.calls[name] = self.calls.get(name, 0) + 1
        return self.calls[name]

    async def echo(self, request: web.Request) -> web.Response:
        self.count("echo")
        self.seen.append({"headers": request.headers.copy(), "body": await request.json()})
        return web.json_response({"ok": True})

    async def busy(self, request: web.Request) -> web.Response:
        self.count(f"busy-{request.method}")
        return web.json_response({"error": "busy"}, status=503)

    async def slow(self, request: web.Request) -> web.Response:
        self.count("slow")
        await asyncio.sleep(2)
        return web.json_response({})

    async def cut_off(self, request: web.Request) -> web.StreamResponse:
        self.count(f"cut_off-{request.method}")
        response = web.StreamResponse(
            headers={"content-length": "1000", "content-type": "application/json"}
        )
        await response.prepare(request)
        await response.write(b'{"results": [')  # a tenth of the promised body, then gone
        assert request.transport is not None
        request.transport.close()
        return response

    async def hang_up(self, request: web.Request) -> web.Response:
        self.count(f"hang_up-{request.method}")
        assert request.transport is not None
        request.transport.close()  # the connection ends with no reply at all
        await asyncio.sleep(1)
        return web.json_response({})


@pytest.fixture
async def service() -> AsyncIterator[tuple[Service, str]]:
    svc = Service()
    app = web.Application()
    app.router.add_post("/echo", svc.echo)
    app.router.add_route("*", "/busy", svc.busy)
    app.router.add_get("/slow", svc.slow)
    app.router.add_route("*", "/hang-up", svc.hang_up)
    app.router.add_post("/cut-off", svc.cut_off)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield svc, f"http://{host}:{port}"
    await runner.cleanup()


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[..., InternalClient]]:
    clients: list[InternalClient] = []

    def make(base_url: str, **kwargs) -> InternalClient:
        client = InternalClient(name="other", base_url=base_url, token="s3cret", **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def test_sends_the_token_the_request_id_the_reader_and_the_json(service, client_for):
    svc, url = service
    token = request_id_var.set("rid-123")
    try:
        response = await client_for(url).post("/echo", json={"q": "ünïcode"}, user_id="u1")
    finally:
        request_id_var.reset(token)
    assert response.status_code == 200 and response.json() == {"ok": True}
    sent = svc.seen[0]
    assert sent["body"] == {"q": "ünïcode"}
    # Not the secret itself: a service's assertion for exactly this reader and request id.
    assertion = sent["headers"]["x-internal-token"]
    assert "s3cret" not in assertion
    signer = AssertionSigner("s3cret")
    assert signer.verify(assertion, user_id="u1", request_id="rid-123") == "svc"
    assert signer.verify(assertion, user_id="u2", request_id="rid-123") is None
    assert sent["headers"]["x-request-id"] == "rid-123"
    assert sent["headers"]["x-user-id"] == "u1"


async def test_a_busy_service_is_asked_again_only_where_that_is_safe(service, client_for):
    svc, url = service
    client = client_for(url, retries=2)
    assert (await client.get("/busy")).status_code == 503
    assert svc.calls["busy-GET"] == 3  # the first try and two retries
    assert (await client.post("/busy", json={})).status_code == 503
    assert svc.calls["busy-POST"] == 1  # a POST may not be repeatable
    assert (await client.post("/busy", json={}, retry_posts=True)).status_code == 503
    assert svc.calls["busy-POST"] == 4


async def test_a_refused_connection_is_retried_then_reported(client_for, unused_tcp_port):
    client = client_for(f"http://127.0.0.1:{unused_tcp_port}", retries=2)
    with pytest.raises(ServiceUnavailable) as caught:
        await client.post("/anything", json={})
    assert caught.value.status == 503 and caught.value.service == "other"
    assert caught.value.reason == "ClientConnectorError"


async def test_a_reply_that_never_comes_ends_at_the_timeout(service, client_for):
    svc, url = service
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable) as caught:
        await client_for(url).get("/slow", timeout_s=0.3)
    assert caught.value.reason == "timeout"
    assert time.monotonic() - started < 1.5
    assert svc.calls["slow"] == 1  # a timeout is not retried: the service may be overloaded


async def test_a_connection_closed_without_reply_repeats_only_what_may_be_repeated(
    service, client_for
):
    svc, url = service
    client = client_for(url, retries=1)
    with pytest.raises(ServiceUnavailable):
        await client.post("/hang-up", json={})
    assert svc.calls["hang_up-POST"] == 1
    with pytest.raises(ServiceUnavailable):
        await client.get("/hang-up")
    # At least one retry of ours (aiohttp itself also resends an idempotent request once when
    # a reused kept-alive connection turns out closed).
    assert svc.calls["hang_up-GET"] >= 2


async def test_a_reply_cut_off_half_way_is_reported_not_parsed(service, client_for):
    svc, url = service
    with pytest.raises(ServiceUnavailable) as caught:
        await client_for(url).post("/cut-off", json={})
    assert caught.value.reason == "ClientPayloadError"
    assert svc.calls["cut_off-POST"] == 1  # the request arrived: a POST is not sent again


@pytest.mark.parametrize("recent_first", [True, False], ids=["recent-first", "aiohttp-fifo"])
async def test_connections_a_burst_opened_close_once_the_load_is_back_to_normal(
    recent_first: bool,
) -> None:
    """After a burst of 10 at once, a steady trickle of one call at a time: recent-first uses
    one connection for it and the other nine idle out (keep-alive 0.5 s here); aiohttp's own
    FIFO connector cycles through all ten and keeps them all (the case this one fixes)."""

    async def peer(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("wait", "0")))
        return web.json_response({"port": request.transport.get_extra_info("peername")[1]})

    app = web.Application()
    app.router.add_get("/peer", peer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    kind = RecentFirstConnector if recent_first else aiohttp.TCPConnector
    session = aiohttp.ClientSession(connector=kind(keepalive_timeout=0.5))

    async def call(wait: float = 0.0) -> int:
        async with session.get(f"http://127.0.0.1:{port}/peer?wait={wait}") as r:
            return (await r.json())["port"]

    try:
        burst = await asyncio.gather(*(call(0.2) for _ in range(10)))
        assert len(set(burst)) == 10
        trickle = set()
        for _ in range(60):  # 1.2 s+ of one call every 20 ms: past the keep-alive
            trickle.add(await call())
            await asyncio.sleep(0.02)
        idle = sum(len(conns) for conns in session.connector._conns.values())  # type: ignore[union-attr]
        if recent_first:
            assert (len(trickle), idle) == (1, 1)
        else:  # each is used again 0.2 s after its last use: none idles out
            assert (len(trickle), idle) == (10, 10)
    finally:
        await session.close()
        await runner.cleanup()
