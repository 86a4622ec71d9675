"""Concurrent searches share their expensive steps: the query embedding (one model call for
many questions) and the vector search (one Qdrant call). A call starts a batch at once while
fewer than `max_in_flight` batches run, so a lone question never waits; questions that arrive
while the batches are busy wait for the next and go out together. Under a burst of readers
this trades many small calls, each paying the full per-call cost, for a few large ones."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from lectern_common.tasks import BackgroundTasks

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        max_batch: int,
        max_in_flight: int,
    ) -> None:
        self.run, self.max_batch, self.max_in_flight = run, max_batch, max_in_flight
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._in_flight = 0
        self._tasks = BackgroundTasks("retrieval.batch")

    async def __call__(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._in_flight < self.max_in_flight:
            self._start()
        # A caller that gives up (its reader left) leaves the batch to finish for the others.
        return await future

    def _start(self) -> None:
        batch = self._waiting[: self.max_batch]
        del self._waiting[: self.max_batch]
        self._in_flight += 1
        self._tasks.spawn(self._run(batch), name="retrieval.batch")

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            wanted = [(item, future) for item, future in batch if not future.done()]
            if wanted:
                results = await self.run([item for item, _ in wanted])
                if len(results) != len(wanted):
                    raise RuntimeError(f"a batch of {len(wanted)} gave {len(results)} results")
                for (_, future), result in zip(wanted, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        except BaseException as exc:  # each caller sees the batch's failure as its own
            for _, future in batch:
                if not future.done():
                    future.set_exception(
                        exc
                        if isinstance(exc, Exception)
                        else RuntimeError("the batch was cancelled")
                    )
            if not isinstance(exc, Exception):
                raise
        finally:
            self._in_flight -= 1
            if self._waiting and self._in_flight < self.max_in_flight:
                self._start()

    async def aclose(self) -> None:
        """Let running batches end (a few ms each) before what they call is closed."""
        await self._tasks.drain(timeout_s=5.0)
