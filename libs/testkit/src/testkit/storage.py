"""Reading stored media back in tests, through the storage's own streaming API."""

from __future__ import annotations

from core.storage import MediaStream


async def read_all(stream: MediaStream) -> bytes:
    """Every byte of an opened object; reading to the end releases the stream."""
    return b"".join([chunk async for chunk in stream.chunks])
