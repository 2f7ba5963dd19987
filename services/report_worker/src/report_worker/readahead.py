"""Overlap waiting for the next page with working on the current one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import TypeVar

T = TypeVar("T")


async def read_ahead(source: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
    """`source`'s items, the next one always requested before the current one is handed out.

    Over a server-side cursor the database reads the next page while this process renders the
    current one, instead of each waiting for the other. Closing this closes `source` too, once
    the item in flight (if any) has settled.
    """
    pending = asyncio.ensure_future(anext(source))
    try:
        while True:
            try:
                item = await pending
            except StopAsyncIteration:
                return
            pending = asyncio.ensure_future(anext(source))
            await asyncio.sleep(0)  # the request goes out now, not after the current item's work
            yield item
    finally:
        pending.cancel()  # a no-op if it is done
        # Nobody wants this item or its error any more, but what fetches it (a query on a
        # connection) must have settled before the caller uses that connection again.
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await pending
        await source.aclose()
