"""Who owns a conversation: a signed-in reader (X-User-Id from the gateway) or a guest holding
a random token (X-Guest-Token), of which only a hash is stored."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

import asyncpg

from lectern_chat import store
from lectern_common.errors import ApiError

_GUEST_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")


@dataclass(frozen=True)
class Owner:
    """`key` is what the conversations table stores: `user:<id>` or `guest:<sha256 hex>`."""

    key: str
    user_id: str | None = None


def reader_owner(user_id: str) -> Owner:
    return Owner(key=f"user:{user_id}", user_id=user_id)


def guest_owner(token_hash: bytes) -> Owner:
    return Owner(key=f"guest:{token_hash.hex()}")


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def invalid_guest_token() -> ApiError:
    return ApiError(
        401, "invalid_guest_token", "guest token unknown or already claimed; start without it"
    )


async def guest_token_hash(pool: asyncpg.Pool, token: str) -> bytes:
    """The hash of a presented guest token that we issued and nobody has claimed yet."""
    if not _GUEST_TOKEN.match(token):
        raise invalid_guest_token()
    token_hash = hash_token(token)
    if not await store.guest_is_active(pool, token_hash):
        raise invalid_guest_token()
    return token_hash


async def resolve(
    pool: asyncpg.Pool, *, user_id: str | None, guest_token: str | None
) -> Owner | None:
    """The owner making this request; None for a guest without a token (owns nothing yet).
    A signed-in reader is always themselves: a guest token only matters to `claim`."""
    if user_id is not None:
        return reader_owner(user_id)
    if guest_token:
        return guest_owner(await guest_token_hash(pool, guest_token))
    return None


def new_guest() -> tuple[str, bytes]:
    """A fresh guest token and its hash (stored with the guest's first conversation)."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)
