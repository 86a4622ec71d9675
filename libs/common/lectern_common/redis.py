"""The Redis client every service shares the shape of, with one key prefix per deployment."""

from __future__ import annotations

import structlog
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

log = structlog.get_logger()

# A Redis that is gone must not hold a request for long (errors.py turns what these raise into
# 503 dependency_unavailable). A reply may take SOCKET_TIMEOUT_S, which stays above the event
# log's blocking read (events.BLOCK_MS, 1 s); a connection attempt CONNECT_TIMEOUT_S.
SOCKET_TIMEOUT_S = 3.0
CONNECT_TIMEOUT_S = 2.0
# redis-py retries 3 times by default, on timeouts too, at the client and again at each
# connect: on a frozen server a command then waited minutes. Once more, quickly, and only when a
# connection broke (a restarted server), never after a timeout.
RETRY = Retry(
    ExponentialBackoff(cap=0.2, base=0.05), retries=1, supported_errors=(RedisConnectionError,)
)


def _options(client_name: str | None) -> dict:
    return {
        # Names each connection in CLIENT LIST: which service holds which connections.
        "client_name": client_name,
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "retry": RETRY,
        "health_check_interval": 30,
    }


def create_redis(
    url: str, *, max_connections: int | None = None, client_name: str | None = None
) -> Redis:
    """A client on `url`; with `max_connections` on a blocking pool, where a caller waits for a
    free connection (at most the socket timeout) instead of opening more under a burst."""
    if max_connections is None:
        return Redis.from_url(url, decode_responses=False, **_options(client_name))
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=SOCKET_TIMEOUT_S, **_options(client_name)
    )
    # The client retries as the pool's connections are told to, and closes the pool with it.
    return Redis.from_pool(pool)


async def open_connections(redis: Redis, count: int) -> None:
    """Open `count` of the pool's connections now and put them back; they stay open (redis-py
    closes a connection only when it breaks). A Redis that is not there yet is no reason to
    refuse to start: the pool connects on demand, and /ready says Redis is down."""
    pool = redis.connection_pool
    held = []
    try:
        for _ in range(count):
            held.append(await pool.get_connection())
    except (RedisError, OSError) as exc:
        log.warning(
            "redis.open_connections_failed", opened=len(held), error_type=type(exc).__name__
        )
    finally:
        for connection in held:
            await pool.release(connection)


class Keys:
    """Namespaced keys: Keys("lectern:")("chat", "stream", id) -> 'lectern:chat:stream:id'."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)
