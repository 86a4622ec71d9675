"""One holder for the tasks a service starts beyond a request (answers, ingests, generations,
sweepers): it keeps a reference to each (the event loop keeps only a weak one), logs a task
that crashed, and is drained by the lifespan at shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import structlog

log = structlog.get_logger()
T = TypeVar("T")


class BackgroundTasks:
    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._tasks)

    def running(self, prefix: str) -> list[asyncio.Task[Any]]:
        """The running tasks whose name starts with `prefix`."""
        return [t for t in self._tasks if t.get_name().startswith(prefix)]

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
        """Start `coro` as a task held until it ends; refused once the holder is closing."""
        if self._closed:
            coro.close()
            raise RuntimeError(f"{self.name}: shutting down, no new task")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error(
                "task.crashed",
                holder=self.name,
                task=task.get_name(),
                error_type=type(exc).__name__,
                exc_info=exc,
            )

    async def drain(self, *, timeout_s: float, cancel: bool = False) -> None:
        """Stop taking tasks, then wait up to `timeout_s` for the running ones (cancelling them
        first when `cancel`); those still running after that are cancelled and awaited."""
        self._closed = True
        if not self._tasks:
            return
        if cancel:
            for task in list(self._tasks):
                task.cancel()
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("task.cancelled_at_shutdown", holder=self.name, count=len(pending))
            await asyncio.wait(pending)
