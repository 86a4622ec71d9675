"""The Redis client every service shares the shape of, with one key prefix per deployment."""

from __future__ import annotations

from redis.asyncio import Redis


def create_redis(url: str) -> Redis:
    return Redis.from_url(
        url,
        decode_responses=False,
        socket_timeout=5,
        socket_connect_timeout=5,
        health_check_interval=30,
    )


class Keys:
    """Namespaced keys: Keys("lectern:")("chat", "stream", id) -> 'lectern:chat:stream:id'."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)
