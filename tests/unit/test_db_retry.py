"""retry_lost_connection: a call whose connection was lost is tried again for a while; any other
error, or a loss that outlasts the window, reaches the caller."""

from __future__ import annotations

import time

import asyncpg
import pytest

from lectern_common.db import retry_lost_connection


class Flaky:
    def __init__(self, *errors: BaseException) -> None:
        self.errors, self.calls = list(errors), 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "stored"


async def test_a_lost_connection_is_tried_again_until_the_call_succeeds():
    call = Flaky(
        ConnectionResetError("reset by peer"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.InternalClientError("cannot switch to state 12; another operation is in progress"),
    )
    started = time.monotonic()
    assert await retry_lost_connection(call, what="test", within_s=5) == "stored"
    assert call.calls == 5
    assert 0.1 + 0.2 + 0.4 + 0.8 <= time.monotonic() - started < 3  # backed off, not spun


async def test_a_loss_longer_than_the_window_reaches_the_caller():
    call = Flaky(*(ConnectionRefusedError("refused") for _ in range(50)))
    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        await retry_lost_connection(call, what="test", within_s=0.5)
    assert time.monotonic() - started < 1.0 and 2 <= call.calls <= 5


async def test_any_other_error_is_not_tried_again():
    call = Flaky(asyncpg.UniqueViolationError("duplicate key"))
    with pytest.raises(asyncpg.UniqueViolationError):
        await retry_lost_connection(call, what="test")
    assert call.calls == 1
