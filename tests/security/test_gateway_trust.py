"""What the gateway and the services trust, probed as an attacker would: the gateway's API and
environment hold no secret a service trusts, services believe an identity only with a fresh
assertion made for exactly its headers, and the gateway's own answers (404, 502, /ready, the
access log) show neither internals nor credentials."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from lectern_common.trust import AssertionSigner
from lectern_dev.harness.polling import wait_until
from lectern_dev.harness.services import routed
from lectern_dev.stack import Process, Stack

SECRETS = ("INTERNAL_TOKEN", "ADMIN_TOKEN", "BETTER_AUTH_SECRET")
# A route only a signed-in reader passes: 404 (no profile yet) once the reader is believed.
SIGNED_IN_ROUTE = "/api/profile/me"


def admin_url(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.config.ports.admin}"


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"


def assert_envelope(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert error["request_id"] == response.headers["x-request-id"]


# ---- the gateway's API and environment ---------------------------------------------------


def test_gateway_api_needs_the_dashboard_credential_and_reveals_no_secret(stack: Stack):
    admin = admin_url(stack)
    for path in ("/api/rawdata", "/api/http/middlewares", "/dashboard/"):
        assert httpx.get(f"{admin}{path}").status_code == 401, path
        wrong = httpx.get(f"{admin}{path}", auth=("admin", "not-the-password"))
        assert wrong.status_code == 401, path
    for path in ("/api/rawdata", "/api/http/middlewares", "/api/http/routers"):
        response = httpx.get(f"{admin}{path}", auth=stack.dashboard_auth)
        assert response.status_code == 200, path
        for name in SECRETS:
            assert stack.secrets[name] not in response.text, (path, name)
    # Probes and metrics stay open on the admin port; the API is not on the public one.
    assert httpx.get(f"{admin}/ping").text == "OK"
    assert "traefik_" in httpx.get(f"{admin}/metrics").text
    assert httpx.get(f"{stack.gateway_url}/api/rawdata").status_code == 404


def test_the_gateway_process_is_given_no_service_secret(stack: Stack):
    environ = Path(f"/proc/{stack.processes['gateway'].popen.pid}/environ").read_bytes()
    for name in SECRETS:
        assert stack.secrets[name].encode() not in environ, name
    assert b"INTERNAL_TOKEN=" not in environ


# ---- what a service believes -------------------------------------------------------------


@pytest.fixture(scope="module")
def signer(stack: Stack) -> AssertionSigner:
    return AssertionSigner(stack.secrets["INTERNAL_TOKEN"])


@pytest.fixture(scope="module")
def profile_url(stack: Stack) -> str:
    return stack.config.url("profile")


@pytest.fixture(scope="module")
def chat_url(stack: Stack) -> str:
    return stack.config.url("chat")


def test_a_fresh_service_assertion_for_the_reader_is_believed(profile_url: str, signer):
    headers = {
        "x-user-id": "reader-trust-1",
        "x-internal-token": signer.sign("svc", user_id="reader-trust-1"),
    }
    response = httpx.get(f"{profile_url}{SIGNED_IN_ROUTE}", headers=headers)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"


def test_the_old_static_token_no_longer_opens_a_service(stack: Stack, profile_url: str):
    headers = {"x-internal-token": stack.secrets["INTERNAL_TOKEN"], "x-user-id": "reader-x"}
    assert_unauthorized(httpx.get(f"{profile_url}{SIGNED_IN_ROUTE}", headers=headers))
    assert_unauthorized(
        httpx.get(f"{stack.config.url('profile')}/internal/profiles/reader-x", headers=headers)
    )


@pytest.mark.parametrize(
    "case", ["missing", "forged", "expired", "from_the_future", "other_user", "other_request"]
)
def test_a_bad_assertion_is_refused(profile_url: str, signer: AssertionSigner, case: str):
    user = "reader-trust-2"
    now = time.time()
    headers = {"x-user-id": user, "x-request-id": "request-trust-0001"}
    made = {
        "missing": None,
        "forged": f"v1.svc.{int(now)}.{secrets.token_urlsafe(32)}",
        "expired": signer.sign(
            "svc", user_id=user, request_id=headers["x-request-id"], now=now - 120
        ),
        "from_the_future": signer.sign(
            "svc", user_id=user, request_id=headers["x-request-id"], now=now + 120
        ),
        # Made for one reader, sent with another reader's id.
        "other_user": signer.sign("svc", user_id="reader-trust-3", request_id="request-trust-0001"),
        # Replayed with another request id.
        "other_request": signer.sign("svc", user_id=user, request_id="request-trust-0002"),
    }[case]
    if made is not None:
        headers["x-internal-token"] = made
    assert_unauthorized(httpx.get(f"{profile_url}{SIGNED_IN_ROUTE}", headers=headers))


def test_a_repeated_identity_header_is_refused(profile_url: str, signer: AssertionSigner):
    headers = [
        ("x-user-id", "reader-trust-4"),
        ("x-user-id", "reader-trust-5"),
        ("x-internal-token", signer.sign("svc", user_id="reader-trust-4")),
    ]
    assert_unauthorized(httpx.get(f"{profile_url}{SIGNED_IN_ROUTE}", headers=headers))


def test_the_verify_answer_opens_public_routes_for_its_reader_only(
    stack: Stack, chat_url: str, profile_url: str
):
    """Verify answers anyone who reaches the profile service: its assertion is a guest's (or
    the caller's own) and never opens /internal/* nor speaks for another reader."""
    verify = httpx.get(f"{stack.config.url('profile')}/internal/auth/verify")
    assert verify.status_code == 200 and "x-user-id" not in verify.headers
    vouched = {
        "x-internal-token": verify.headers["x-internal-token"],
        "x-request-id": verify.headers["x-request-id"],
        "x-rate-key": verify.headers["x-rate-key"],
    }
    as_guest = httpx.post(
        f"{stack.config.url('retrieval')}/api/search", json={"query": "x"}, headers=vouched
    )
    assert as_guest.status_code != 401, as_guest.text
    assert_unauthorized(
        httpx.delete(f"{chat_url}/internal/readers/reader-trust-6/conversations", headers=vouched)
    )
    assert_unauthorized(
        httpx.get(
            f"{profile_url}{SIGNED_IN_ROUTE}", headers={**vouched, "x-user-id": "reader-trust-6"}
        )
    )


def test_a_client_sent_assertion_is_dropped_by_the_gateway(
    stack: Stack, gateway: httpx.Client, signer: AssertionSigner
):
    # Even a valid one (as if it had leaked), made for exactly the headers the request will
    # arrive with: the request id the client sends (the gateway keeps a well-formed one) and
    # the guest rate key of this address. Were the client's X-User-Id and X-Internal-Token
    # passed on, profile would take the victim for the caller (404: no profile yet); the
    # gateway replaces both with the verify answer's, so the caller stays a guest (401).
    victim = "reader-trust-7"
    request_id = f"trust-forged-{uuid.uuid4().hex}"
    assertion = signer.sign("gw", user_id=victim, request_id=request_id, rate_key="ip:127.0.0.1")
    forged = {"x-user-id": victim, "x-internal-token": assertion, "x-request-id": request_id}
    assert_unauthorized(gateway.get(SIGNED_IN_ROUTE, headers=forged))


def test_open_paths_never_see_an_unverified_identity(stack: Stack, chat_url: str):
    # /ready needs no assertion; a forged X-User-Id sent there is not the caller's identity,
    # not even in the service's log.
    rid = f"trust-open-{uuid.uuid4().hex}"
    response = httpx.get(f"{chat_url}/ready", headers={"x-user-id": "admin", "x-request-id": rid})
    assert response.status_code == 200

    def logged() -> dict | None:
        for line in (stack.logs / "chat.log").read_text(errors="replace").splitlines():
            if rid in line and '"http.request"' in line:
                return json.loads(line)
        return None

    entry = wait_until(logged, 10.0, message="the request never reached chat's log")
    assert entry["user_id"] is None


# ---- the gateway's own answers -----------------------------------------------------------


def test_the_gateway_404_is_the_error_envelope(gateway: httpx.Client):
    for path in ("/no/such/page", "/internal/search", "/api", "/api/nothing-here"):
        assert_envelope(gateway.get(path), 404, "not_found")
    rid = "trust-request-404-0001"
    response = gateway.get("/nowhere", headers={"x-request-id": rid})
    assert response.json()["error"]["request_id"] == rid == response.headers["x-request-id"]


def test_the_access_log_keeps_no_query_string(stack: Stack, gateway: httpx.Client):
    rid = f"trust-log-{uuid.uuid4().hex}"
    response = gateway.get("/api/profile/options?token=secret123", headers={"x-request-id": rid})
    assert response.status_code == 200
    access_log = stack.logs / "access.log"

    def logged() -> dict | None:
        for line in access_log.read_text(errors="replace").splitlines():
            if rid in line:
                return json.loads(line)
        return None

    entry = wait_until(logged, 10.0, message="the request never reached the access log")
    assert entry["RouterName"].startswith("profile")
    assert "secret123" not in access_log.read_text(errors="replace")


# ---- a stack with a dependency down ------------------------------------------------------


@pytest.fixture(scope="module")
def own_redis() -> Iterator[tuple[str, Process]]:
    """A Redis of this module's own on a Unix socket, so it can be stopped."""
    folder = Path(tempfile.mkdtemp(prefix="lt-redis-"))
    sock = folder / "r.sock"
    binary = shutil.which("redis-server", path=str(Path(sys.executable).parent)) or "redis-server"
    process = Process(
        "trust-redis",
        [
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        env=dict(os.environ),
        log=folder / "redis.log",
    )
    wait_until(sock.exists, 15.0, message="redis did not start")
    yield f"unix://{sock}", process
    process.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def degraded(make_stack: Callable[..., Stack], own_redis: tuple[str, Process]) -> Stack:
    """No chat service (its port answers nothing), and summary on a Redis stopped once the
    stack is up."""
    url, redis_process = own_redis
    stack = make_stack(
        "trust-degraded",
        services=("retrieval", "profile", "summary"),
        extra_env={"REDIS_URL": url, "EMBEDDINGS_PROVIDER": "local"},
    )
    redis_process.stop()
    return routed(stack)


def test_ready_names_a_failing_dependency_but_not_its_error(degraded: Stack):
    with httpx.Client(base_url=degraded.gateway_url, timeout=10.0) as gateway:
        response = gateway.get("/api/summary/ready")
    assert response.status_code == 503, response.text
    for leak in ("r.sock", "lt-redis-", "Error", "connect", "/"):
        assert leak not in response.text, leak
    body = response.json()
    assert body["status"] == "not_ready"
    redis = body["dependencies"]["redis"]
    assert redis["ok"] is False and redis["status"] == "down"
    assert isinstance(redis["latency_ms"], float)
    assert body["dependencies"]["postgres"]["status"] == "up"

    def logged() -> list[dict]:
        lines = (degraded.logs / "summary.log").read_text(errors="replace").splitlines()
        events = [json.loads(line) for line in lines if '"ready.check_failed"' in line]
        return [e for e in events if e["dependency"] == "redis"]

    failures = wait_until(logged, 10.0, message="no ready.check_failed line for redis")
    assert "r.sock" in failures[-1]["detail"]


def test_a_backend_that_is_down_gets_the_502_envelope(degraded: Stack):
    with httpx.Client(base_url=degraded.gateway_url, timeout=10.0) as gateway:
        assert_envelope(gateway.get("/api/chat/conversations"), 502, "bad_gateway")
        assert_envelope(
            gateway.post("/api/chat/stream", json={"message": "hi"}), 502, "bad_gateway"
        )
        assert_envelope(gateway.get("/"), 502, "bad_gateway")
        rid = "trust-request-502-0001"
        response = gateway.get("/api/chat/conversations", headers={"x-request-id": rid})
        assert response.json()["error"]["request_id"] == rid
