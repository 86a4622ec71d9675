"""How concurrent searches share a model call: a lone question goes at once, questions that
arrive while the calls are busy go together, and a failure reaches exactly its batch's
callers. Pure asyncio: the batching is what is under test (the search tests use it for real)."""

from __future__ import annotations

import asyncio

import pytest

from lectern_retrieval.batching import Batcher


class Model:
    """Doubles numbers, one call per batch; a call takes `delay` and can be made to fail."""

    def __init__(self, delay: float = 0.05) -> None:
        self.delay, self.batches, self.fail_next = delay, [], False
        self.running = self.most_running = 0  # calls under way now, and at most at once

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.running -= 1
        if self.fail_next:
            self.fail_next = False
            raise ValueError("model down")
        return [2 * i for i in items]


async def test_a_lone_call_goes_at_once() -> None:
    model = Model(delay=0.0)
    batcher = Batcher(model, max_batch=8, max_in_flight=1)
    assert await batcher(21) == 42
    assert model.batches == [[21]]


async def test_calls_arriving_while_busy_go_together_and_each_gets_its_own_result() -> None:
    model = Model()
    batcher = Batcher(model, max_batch=8, max_in_flight=1)
    results = await asyncio.gather(*(batcher(i) for i in range(10)))
    assert results == [2 * i for i in range(10)]
    # The first went alone; the nine that came while it ran went in batches of at most 8.
    assert model.batches == [[0], [1, 2, 3, 4, 5, 6, 7, 8], [9]]


async def test_up_to_max_in_flight_batches_run_at_once() -> None:
    model = Model()
    batcher = Batcher(model, max_batch=100, max_in_flight=3)
    await asyncio.gather(*(batcher(i) for i in range(20)))
    assert model.batches[:3] == [[0], [1], [2]] and model.batches[3] == list(range(3, 20))
    assert model.most_running == 3  # at once, not one by one


async def test_a_failed_call_fails_its_callers_only() -> None:
    model = Model()
    batcher = Batcher(model, max_batch=8, max_in_flight=1)
    model.fail_next = True
    first = asyncio.gather(*(batcher(i) for i in range(3)), return_exceptions=True)
    outcomes = await first
    assert isinstance(outcomes[0], ValueError)  # the first call's batch failed...
    assert outcomes[1:] == [2, 4]  # ...the next batch did not
    assert await batcher(5) == 10


async def test_a_caller_that_leaves_does_not_disturb_the_others() -> None:
    model = Model()
    batcher = Batcher(model, max_batch=8, max_in_flight=1)
    busy = asyncio.ensure_future(batcher(0))
    await asyncio.sleep(0)
    leaving = asyncio.ensure_future(batcher(1))
    staying = asyncio.ensure_future(batcher(2))
    await asyncio.sleep(0)
    leaving.cancel()
    assert await staying == 4 and await busy == 0
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert model.batches == [[0], [2]]  # the one who left was not even sent
