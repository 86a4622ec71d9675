"""Signed-in readers for tests and benchmarks: real Better Auth accounts made through the
gateway."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from functools import cached_property

import httpx

# The gateway rate-limits /api/auth/* per client address; tests all come from 127.0.0.1.
RATE_LIMIT_WAIT_S = 30.0
AUTH_COOKIE_SUFFIXES = (
    "better-auth.session_token",
    "better-auth.session_data",
    "better-auth.dont_remember",
)


@dataclass(frozen=True)
class Reader:
    """A reader signed up through the gateway, with each kind of credential Lectern accepts."""

    user_id: str
    email: str
    password: str
    session_token: str  # the bare session token (Better Auth's `token`)
    signed_session_token: str  # `token.signature`, as the bearer plugin and the cookie carry it
    gateway: httpx.Client = field(repr=False, compare=False)

    @cached_property
    def jwt(self) -> str:
        """An EdDSA JWT from /api/auth/token, fetched on first use (each auth call counts
        against the gateway's rate limit, and most tests need only the session token)."""
        return fetch_jwt(self.gateway, self.session_token)

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.session_token}"}

    @property
    def jwt_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.jwt}"}


def auth_request(gateway: httpx.Client, method: str, path: str, **kwargs) -> httpx.Response:
    """A call to /api/auth/* as a browser on the gateway's origin would make it, waiting out
    the gateway's per-address rate limit (429 + Retry-After) instead of failing the test."""
    headers = {"origin": str(gateway.base_url).rstrip("/"), **kwargs.pop("headers", {})}
    deadline = time.monotonic() + RATE_LIMIT_WAIT_S
    while True:
        response = gateway.request(method, path, headers=headers, **kwargs)
        forget_auth_cookies(gateway)
        if response.status_code != 429 or time.monotonic() > deadline:
            return response
        time.sleep(min(float(response.headers.get("retry-after", "1") or 1), 5.0))


def forget_auth_cookies(gateway: httpx.Client) -> None:
    """Drop the session cookie Better Auth just set: the client is shared by the whole test
    session, and a leftover cookie would sign in every later "anonymous" request."""
    for cookie in list(gateway.cookies.jar):
        if cookie.name.endswith(AUTH_COOKIE_SUFFIXES):
            gateway.cookies.jar.clear(cookie.domain, cookie.path, cookie.name)


def sign_up(
    gateway: httpx.Client,
    *,
    email: str | None = None,
    password: str | None = None,
    name: str = "Test Reader",
) -> httpx.Response:
    email = email or f"reader-{secrets.token_hex(6)}@example.com"
    password = password or secrets.token_urlsafe(12)
    return auth_request(
        gateway,
        "POST",
        "/api/auth/sign-up/email",
        json={"email": email, "password": password, "name": name},
    )


def sign_in(gateway: httpx.Client, email: str, password: str, **kwargs) -> httpx.Response:
    return auth_request(
        gateway,
        "POST",
        "/api/auth/sign-in/email",
        json={"email": email, "password": password},
        **kwargs,
    )


def fetch_jwt(gateway: httpx.Client, session_token: str) -> str:
    response = auth_request(
        gateway, "GET", "/api/auth/token", headers={"authorization": f"Bearer {session_token}"}
    )
    response.raise_for_status()
    return response.json()["token"]


def new_reader(gateway: httpx.Client, *, name: str = "Test Reader") -> Reader:
    """Sign up a fresh random reader through the gateway and return its credentials."""
    email = f"reader-{secrets.token_hex(6)}@example.com"
    password = secrets.token_urlsafe(12)
    response = sign_up(gateway, email=email, password=password, name=name)
    response.raise_for_status()
    body = response.json()
    token = body["token"]
    return Reader(
        user_id=body["user"]["id"],
        email=email,
        password=password,
        session_token=token,
        signed_session_token=response.headers.get("set-auth-token", token),
        gateway=gateway,
    )
