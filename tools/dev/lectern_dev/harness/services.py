"""Talking to a test stack's services directly, as another service or the admin would: the
signed internal assertion and the admin credential, clients on the gateway and the fake
Gemini, and the wait for Traefik to route."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx

from lectern_common.trust import AssertionSigner
from lectern_dev.harness.polling import wait_until
from lectern_dev.stack import Stack


def internal_headers(stack: Stack, user_id: str | None = None) -> dict[str, str]:
    """Headers of one call as another service makes it: a fresh assertion (valid for a minute)
    for `user_id` and no request id. A client used longer, or one that sends its own
    X-Request-Id, takes `InternalAuth` instead."""
    headers = {"x-user-id": user_id} if user_id else {}
    signer = AssertionSigner(stack.secrets["INTERNAL_TOKEN"])
    return {"x-internal-token": signer.sign("svc", user_id=user_id or ""), **headers}


class InternalAuth(httpx.Auth):
    """Signs each request as a service would, binding the identity headers it carries."""

    def __init__(self, stack: Stack, user_id: str | None = None) -> None:
        self.signer = AssertionSigner(stack.secrets["INTERNAL_TOKEN"])
        self.user_id = user_id

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        if self.user_id:
            request.headers["x-user-id"] = self.user_id
        request.headers["x-internal-token"] = self.signer.sign(
            "svc",
            user_id=request.headers.get("x-user-id", ""),
            request_id=request.headers.get("x-request-id", ""),
            rate_key=request.headers.get("x-rate-key", ""),
        )
        yield request


def admin_headers(stack: Stack) -> dict[str, str]:
    return {"authorization": f"Bearer {stack.secrets['ADMIN_TOKEN']}"}


@contextlib.contextmanager
def gateway_client(stack: Stack, timeout: float = 30.0) -> Iterator[httpx.Client]:
    """A client on the stack's gateway, as a browser or the CLI reaches it."""
    with httpx.Client(base_url=stack.gateway_url, timeout=timeout) as client:
        yield client


@contextlib.contextmanager
def fake_gemini_client(stack: Stack) -> Iterator[httpx.Client]:
    """A client on the stack's fake Gemini (`/_fake/config`, `/_fake/requests`), reset before
    and after use so one test's behaviour never leaks into the next."""
    with httpx.Client(base_url=stack.config.url("fake_gemini"), timeout=10.0) as client:
        client.post("/_fake/reset")
        yield client
        client.post("/_fake/reset")


def fake_requests(fake: httpx.Client, *kinds: str) -> list[dict]:
    """The requests the fake Gemini received, oldest first; only those of `kinds` if given
    (`generateContent`, `streamGenerateContent`, `batchEmbedContents`)."""
    requests = fake.get("/_fake/requests").json()["requests"]
    return [r for r in requests if not kinds or r["kind"] in kinds]


def routed(stack: Stack, paths: tuple[str, ...] | None = None, timeout_s: float = 30.0) -> Stack:
    """The stack once its gateway routes to each service (or to `paths`): Traefik answers
    /ping before its file provider has loaded the routes, and after a restart it keeps a
    service marked down until its next health check (10 s apart); a request in between gets a
    bare 404 or 503."""
    paths = paths or tuple(f"/api/{name}/health" for name in stack.config.services)
    with httpx.Client(base_url=stack.gateway_url, timeout=2.0) as client:

        def answers(path: str) -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return client.get(path).status_code == 200
            return False

        for path in paths:
            wait_until(
                lambda path=path: answers(path),
                timeout_s,
                interval_s=0.1,
                message=f"the gateway does not route {path}",
            )
    return stack


def model_calls(fake: httpx.Client) -> list[dict]:
    """The generation requests the fake Gemini received (embedding calls left out)."""
    return fake_requests(fake, "generateContent", "streamGenerateContent")
