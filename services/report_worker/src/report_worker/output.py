"""Write report text to a stream in large batches, off the event loop.

A slow reader on the other end of a STDOUT pipe blocks `write`; doing it in a worker thread
keeps the loop (signals, timers) responsive while the batch drains.
"""

from __future__ import annotations

import asyncio
from typing import TextIO

BATCH_CHARS = 64 * 1024


class BatchedWriter:
    def __init__(self, stream: TextIO, batch_chars: int = BATCH_CHARS) -> None:
        self._stream = stream
        self._batch_chars = batch_chars
        self._pending: list[str] = []
        self._size = 0
        self.written = 0  # characters handed to the stream so far

    async def write(self, text: str) -> None:
        self._pending.append(text)
        self._size += len(text)
        if self._size >= self._batch_chars:
            await self._drain(flush=False)

    async def flush(self) -> None:
        await self._drain(flush=True)

    async def _drain(self, *, flush: bool) -> None:
        batch = "".join(self._pending)
        self._pending.clear()
        self._size = 0
        await asyncio.to_thread(self._write_sync, batch, flush)
        self.written += len(batch)

    def _write_sync(self, batch: str, flush: bool) -> None:
        if batch:
            self._stream.write(batch)
        if flush:
            self._stream.flush()
