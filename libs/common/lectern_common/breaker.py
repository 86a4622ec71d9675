"""A circuit breaker in front of one internal dependency (lectern_common.http): after
`failures` failed calls in a row (unreachable, timed out, a gateway error) it opens and calls
fail at once for `cooldown_s`; then it lets one call through (half-open): its success closes the
breaker, its failure opens it again for twice as long, up to `max_cooldown_s`. A service that
was restarted in 3 s is asked again within about that (probes at 0.5, 1.5, 3.5, 7.5 s), and
one that stays down is asked once every `max_cooldown_s`. One breaker per client, per
process."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

import structlog

log = structlog.get_logger()


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failures: int = 5,
        cooldown_s: float = 0.5,
        max_cooldown_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name, self.threshold, self.clock = name, failures, clock
        self.first_cooldown_s = cooldown_s
        self.max_cooldown_s = max(cooldown_s, max_cooldown_s)
        self.cooldown_s = cooldown_s  # the one running now
        self.state = State.CLOSED
        self.failures = 0
        self.opened_at = 0.0

    def allow(self) -> bool:
        """Whether a call may go out now (in half-open, only the one probe)."""
        if self.state is State.CLOSED:
            return True
        if self.state is State.OPEN and self.clock() - self.opened_at >= self.cooldown_s:
            self.state = State.HALF_OPEN
            log.info("breaker.half_open", dependency=self.name)
            return True
        return False

    def retry_after_s(self) -> int:
        """Seconds until the next probe may go out (at least 1)."""
        return max(1, round(self.opened_at + self.cooldown_s - self.clock()))

    def succeeded(self) -> None:
        if self.state is not State.CLOSED:
            log.info("breaker.closed", dependency=self.name)
        self.state, self.failures = State.CLOSED, 0

    def abandoned(self) -> None:
        """The caller gave up on its call (cancelled it): that says nothing about the
        dependency, but a half-open probe must not stay in flight for ever, so the next call
        may probe again."""
        if self.state is State.HALF_OPEN:
            self.state = State.OPEN  # its cool-down has passed: the next allow() probes

    def failed(self) -> None:
        self.failures += 1
        if self.state is State.HALF_OPEN:
            self.cooldown_s = min(2 * self.cooldown_s, self.max_cooldown_s)
        elif self.state is State.CLOSED and self.failures >= self.threshold:
            self.cooldown_s = self.first_cooldown_s
        else:
            return
        self.state, self.opened_at = State.OPEN, self.clock()
        log.warning(
            "breaker.open", dependency=self.name, failures=self.failures, cooldown_s=self.cooldown_s
        )
