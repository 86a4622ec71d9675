"""The foundation through the real gateway: routing, health views, error envelope, request ids,
the internal-token guard and metrics."""

from __future__ import annotations

import httpx
import pytest

from lectern_dev.stack import Stack

SERVICES = ("chat", "retrieval", "profile", "summary")


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_health_and_ready_through_gateway(gateway: httpx.Client, service: str):
    health = gateway.get(f"/api/{service}/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "service": service}
    ready = gateway.get(f"/api/{service}/ready")
    assert ready.status_code == 200, ready.text
    deps = ready.json()["dependencies"]
    assert deps["postgres"]["ok"]  # the exact dependencies: tests/test_ready.py
    assert all(isinstance(d["latency_ms"], float) for d in deps.values())


def test_gateway_admin_ping_and_metrics(stack: Stack):
    admin = f"http://127.0.0.1:{stack.config.ports.admin}"
    assert httpx.get(f"{admin}/ping").text == "OK"
    assert "traefik_" in httpx.get(f"{admin}/metrics").text


def test_internal_paths_are_not_routed(gateway: httpx.Client):
    for path in (
        "/internal/auth/verify",
        "/internal/search",
        "/internal/chapters/x",
        "/api/chat/../internal/search",
        "/internal/profiles/u1",
    ):
        response = gateway.get(path)
        assert response.status_code == 404, path


def test_unknown_route_gets_error_envelope(gateway: httpx.Client):
    response = gateway.get("/api/chat/no-such-route")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert error["request_id"] == response.headers["x-request-id"]


def test_request_id_is_propagated(gateway: httpx.Client):
    rid = "test-request-id-12345"
    response = gateway.get("/api/chat/no-such-route", headers={"X-Request-ID": rid})
    assert response.headers["x-request-id"] == rid
    assert response.json()["error"]["request_id"] == rid


def test_direct_call_without_internal_token_is_refused(stack: Stack):
    # Services are reachable only through the gateway or with the internal token.
    for service in SERVICES:
        url = stack.config.url(service)
        assert httpx.get(f"{url}/health").status_code == 200
        response = httpx.get(f"{url}/internal/anything", headers={"X-User-Id": "admin"})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"


def test_service_metrics_count_requests(stack: Stack, gateway: httpx.Client):
    gateway.get("/api/chat/no-such-route")
    text = httpx.get(f"{stack.config.url('chat')}/metrics").text
    sample = (
        'lectern_http_requests_total{method="GET",route="unmatched",service="chat",status="404"}'
    )
    assert sample in text


def test_bad_json_body_gets_error_envelope(gateway: httpx.Client):
    response = gateway.post(
        "/api/search", content=b'{"query": "nodes", ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert "Traceback" not in response.text


def test_validation_error_names_the_field(gateway: httpx.Client):
    response = gateway.post("/api/search", json={"query": "nodes", "top_k": "many"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [d["field"] for d in error["details"]] == ["top_k"]


def test_a_service_keeps_an_idle_connection_open_longer_than_its_clients_do(stack: Stack):
    """A proxy's idle keep-alive connection must not be closed by the service first (uvicorn's
    default: 5 s), or a request sent on it that instant fails with a 502. One raw connection to
    chat: a request, 6 s idle, a second request on the same socket still answered."""
    import socket
    import time
    from urllib.parse import urlsplit

    address = urlsplit(stack.config.url("chat"))
    request = f"GET /health HTTP/1.1\r\nHost: {address.hostname}\r\n\r\n".encode()

    def response(conn: socket.socket) -> bytes:
        """One whole response (its head and Content-Length bytes of body): the server may
        write the head and the body in separate segments, and a later recv must not read the
        first response's body as the second's head (a CI run did)."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            assert chunk, f"connection closed: {data!r}"
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            chunk = conn.recv(65536)
            assert chunk, f"connection closed mid-body: {data!r}"
            body += chunk
        assert len(body) == length, "more bytes than one response"
        return head

    with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
        conn.sendall(request)
        assert response(conn).startswith(b"HTTP/1.1 200")
        time.sleep(6)
        conn.sendall(request)
        assert response(conn).startswith(b"HTTP/1.1 200")
