"""Coalescing concurrent calls into batches: many requests, one statement.

Under load, many requests each want to write one row. Each statement costs the same round
trip, commit and driver overhead whatever its size, so writing the rows that arrived together
in one statement is several times cheaper per row, and nobody waits on a timer: a batch starts
as soon as the previous one is done, with whatever arrived meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """`await submit(item)` returns `run([..., item, ...])`'s result for that item. One batch
    runs at a time; items that arrive meanwhile go together in the next one. If a batch fails,
    its items are run one by one, so one bad item fails alone, with its own error."""

    def __init__(
        self, run: Callable[[Sequence[T]], Awaitable[Sequence[R]]], *, max_batch: int = 256
    ) -> None:
        self._run = run
        self._max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._drainer is None or self._drainer.done():
            # A task of its own, not the caller: a caller never writes other callers' batches.
            self._drainer = asyncio.create_task(self._drain(), name="batcher")
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            await self._resolve(batch)

    async def _resolve(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], error=exc)
                return
            for one in batch:
                await self._resolve([one])
            return
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)


def statement_batcher(
    db: Database, run: Callable[[AsyncSession, Sequence[T]], Awaitable[Sequence[R]]]
) -> Batcher[T, R]:
    """A Batcher whose every batch is `run(session, items)` in one autocommit session of `db`."""

    async def in_session(items: Sequence[T]) -> Sequence[R]:
        async with db.session() as session:
            return await run(session, items)

    return Batcher(in_session)


def _settle(
    future: asyncio.Future[R], *, result: R | None = None, error: Exception | None = None
) -> None:
    if future.done():  # its caller went away (a client disconnect); the work is done anyway
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]
