"""Coalescing concurrent calls: batches form while one runs, and one bad item fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from core.batching import Batcher


async def test_items_that_arrive_while_a_batch_runs_go_together_in_the_next() -> None:
    batches: list[list[int]] = []
    release = asyncio.Event()

    async def run(items: Sequence[int]) -> list[int]:
        batches.append(list(items))
        if len(batches) == 1:
            await release.wait()  # the first batch is slow: the others pile up meanwhile
        return [item * 10 for item in items]

    batcher: Batcher[int, int] = Batcher(run)
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0)
    later = [asyncio.create_task(batcher.submit(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    release.set()

    assert await first == 10
    assert [await task for task in later] == [20, 30, 40]
    assert batches == [[1], [2, 3, 4]]


async def test_a_failing_batch_is_retried_item_by_item() -> None:
    calls: list[list[int]] = []

    async def run(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        if 13 in items:
            raise ValueError(f"bad item in {items}")
        return list(items)

    batcher: Batcher[int, int] = Batcher(run)
    tasks = [asyncio.create_task(batcher.submit(n)) for n in (12, 13, 14)]
    results = await asyncio.gather(*tasks, return_exceptions=True)

    assert results[0] == 12
    assert isinstance(results[1], ValueError)
    assert str(results[1]) == "bad item in [13]"  # its own error, not the batch's
    assert results[2] == 14
    assert calls == [[12, 13, 14], [12], [13], [14]]


async def test_batches_are_bounded() -> None:
    sizes: list[int] = []

    async def run(items: Sequence[int]) -> list[int]:
        sizes.append(len(items))
        return list(items)

    batcher: Batcher[int, int] = Batcher(run, max_batch=3)
    assert await asyncio.gather(*(batcher.submit(n) for n in range(7))) == list(range(7))
    assert sizes == [3, 3, 1]


async def test_a_caller_that_goes_away_does_not_break_the_batch() -> None:
    release = asyncio.Event()

    async def run(items: Sequence[int]) -> list[int]:
        await release.wait()
        return list(items)

    batcher: Batcher[int, int] = Batcher(run)
    gone = asyncio.create_task(batcher.submit(1))
    stays = asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0)
    gone.cancel()
    release.set()

    assert await stays == 2
    with pytest.raises(asyncio.CancelledError):
        await gone
