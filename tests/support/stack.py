"""Helpers for talking to a test stack's services directly (as another service would)."""

from __future__ import annotations

from lectern_dev.stack import Stack


def internal_headers(stack: Stack, user_id: str | None = None) -> dict[str, str]:
    headers = {"x-internal-token": stack.secrets["INTERNAL_TOKEN"]}
    if user_id:
        headers["x-user-id"] = user_id
    return headers


def admin_headers(stack: Stack) -> dict[str, str]:
    return {"authorization": f"Bearer {stack.secrets['ADMIN_TOKEN']}"}
