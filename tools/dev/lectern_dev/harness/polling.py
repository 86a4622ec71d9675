"""Waiting for something to become true by asking again, instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout_s: float,
    *,
    interval_s: float = 0.05,
    message: str | Callable[[], str] = "the condition never held",
) -> T:
    """Call `predicate` until it returns something truthy and return that; raise TimeoutError
    with `message` once `timeout_s` passed. The predicate is asked once more at the deadline,
    so a slow machine that gets there just in time still passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        last = time.monotonic() >= deadline
        if result := predicate():
            return result
        if last:
            raise TimeoutError(message() if callable(message) else message)
        time.sleep(interval_s)
