"""read_ahead: the next item is requested before the current one is used; closing cleans up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing

import pytest

from report_worker.readahead import read_ahead


class Source:
    """An async generator of 0..n-1 that logs each request, each item's use and its closing."""

    def __init__(self, n: int, *, fail_at: int | None = None, delay: float = 0) -> None:
        self.n, self.fail_at, self.delay = n, fail_at, delay
        self.log: list[str] = []

    async def items(self) -> AsyncGenerator[int, None]:
        try:
            for i in range(self.n):
                self.log.append(f"request {i}")
                await asyncio.sleep(self.delay)
                if i == self.fail_at:
                    raise RuntimeError(f"item {i} failed")
                yield i
        except asyncio.CancelledError:
            self.log.append("cancelled")
            raise
        finally:
            self.log.append("closed")


async def test_every_item_in_order_each_next_one_requested_before_this_one_is_used() -> None:
    source = Source(3)
    got: list[int] = []
    async for i in read_ahead(source.items()):
        source.log.append(f"use {i}")
        got.append(i)
    assert got == [0, 1, 2]
    assert source.log == [
        "request 0",
        "request 1",
        "use 0",
        "request 2",
        "use 1",
        "closed",  # asked for a fourth item, the source ended, while the third was in use
        "use 2",
    ]


async def test_an_error_reaches_the_consumer_in_its_place() -> None:
    source = Source(5, fail_at=2)
    got: list[int] = []

    async def consume() -> None:
        async for i in read_ahead(source.items()):
            got.append(i)

    with pytest.raises(RuntimeError, match="item 2 failed"):
        await consume()
    assert got == [0, 1]


async def test_closing_early_cancels_the_item_in_flight_and_closes_the_source() -> None:
    source = Source(5, delay=0.05)
    async with aclosing(read_ahead(source.items())) as items:
        assert await anext(items) == 0  # item 1 is now in flight
    assert source.log == ["request 0", "request 1", "cancelled", "closed"]


async def test_closing_when_nothing_is_in_flight_still_closes_the_source() -> None:
    source = Source(5)
    async with aclosing(read_ahead(source.items())) as items:
        assert await anext(items) == 0
        await asyncio.sleep(0.01)  # item 1 has arrived and waits, unused
    assert source.log == ["request 0", "request 1", "closed"]
