"""Graceful SIGTERM: on the signal a service turns draining (`/ready` answers 503, so the
gateway's health check takes it out, and new answer streams are refused), keeps serving for
`drain_notice_s`, then stops accepting (uvicorn's own shutdown), while its drain hooks let open
answer streams finish for up to `shutdown_grace_s` and then end them with a retryable `error`
after storing what was produced. uvicorn waits for the open connections (a little longer than
the grace), then the lifespan closes the stores.

The handler is chained in front of uvicorn's (installed by the lifespan, inside uvicorn's
signal capture); a second SIGTERM or SIGINT goes straight to uvicorn.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

import structlog

log = structlog.get_logger()

# A hook gets the moment (time.monotonic()) by which it must have ended what it runs.
DrainHook = Callable[[float], Awaitable[None]]


class Drain:
    def __init__(self, *, grace_s: float, notice_s: float) -> None:
        self.grace_s, self.notice_s = grace_s, notice_s
        self.draining = False
        self.hooks: list[DrainHook] = []
        self._task: asyncio.Task[None] | None = None
        self._previous: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, hook: DrainHook) -> None:
        self.hooks.append(hook)

    def install(self) -> None:
        """Chain in front of the current SIGTERM handler (from the running loop's thread)."""
        self._loop = asyncio.get_running_loop()
        try:
            self._previous = signal.signal(signal.SIGTERM, self._on_signal)
        except ValueError:  # not the main thread (tests in-process): no signal to take
            self._previous = None

    def uninstall(self) -> None:
        if self._previous is not None and signal.getsignal(signal.SIGTERM) == self._on_signal:
            signal.signal(signal.SIGTERM, self._previous)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if self.draining or self._loop is None:
            self._pass_on(sig, frame)
            return
        self.draining = True
        self._loop.call_soon_threadsafe(self._start, sig)

    def _pass_on(self, sig: int, frame: FrameType | None) -> None:
        if callable(self._previous):
            self._previous(sig, frame)

    def _start(self, sig: int) -> None:
        self._task = asyncio.get_running_loop().create_task(self._drain(sig), name="drain")

    async def _drain(self, sig: int) -> None:
        deadline = time.monotonic() + self.grace_s
        log.info("service.draining", grace_s=self.grace_s, notice_s=self.notice_s)
        hooks = asyncio.gather(*(hook(deadline) for hook in self.hooks), return_exceptions=True)
        await asyncio.sleep(self.notice_s)
        self._pass_on(sig, None)  # uvicorn: stop accepting, wait for the open connections
        for result in await hooks:
            if isinstance(result, BaseException):
                log.warning("service.drain_hook_failed", error_type=type(result).__name__)
        log.info("service.drained")
