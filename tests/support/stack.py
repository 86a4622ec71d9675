"""Helpers for talking to a test stack's services directly (as another service would)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx

from lectern_dev.stack import Stack


def internal_headers(stack: Stack, user_id: str | None = None) -> dict[str, str]:
    headers = {"x-internal-token": stack.secrets["INTERNAL_TOKEN"]}
    if user_id:
        headers["x-user-id"] = user_id
    return headers


def admin_headers(stack: Stack) -> dict[str, str]:
    return {"authorization": f"Bearer {stack.secrets['ADMIN_TOKEN']}"}


@contextlib.contextmanager
def fake_gemini_client(stack: Stack) -> Iterator[httpx.Client]:
    """A client on the stack's fake Gemini (`/_fake/config`, `/_fake/requests`), reset before
    and after use so one test's behaviour never leaks into the next."""
    with httpx.Client(base_url=stack.config.url("fake_gemini"), timeout=10.0) as client:
        client.post("/_fake/reset")
        yield client
        client.post("/_fake/reset")
