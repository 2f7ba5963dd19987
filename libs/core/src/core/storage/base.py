"""The media storage contract shared by the S3 and local file system backends.

Keys are relative, slash-separated paths such as `generations/<job_id>/0.png`. Every key is
validated before use, so no key can name anything outside the bucket or the local root.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import NamedTuple, Protocol, runtime_checkable

DEFAULT_CONTENT_TYPE = "application/octet-stream"
CHUNK_SIZE = 64 * 1024
MAX_KEY_LENGTH = 512
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # the S3 SigV4 ceiling

# A segment starts with a letter, digit, "_" or "-" (never "."), so "." and ".." segments and
# hidden files are impossible; the local backend relies on that for its temp and sidecar files.
_SEGMENT = r"[A-Za-z0-9_-][A-Za-z0-9._-]*"
_KEY_RE = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})*")
_EXT_RE = re.compile(r"[A-Za-z0-9]{1,10}")


class StorageError(Exception):
    """A storage operation failed for a reason retrying will not fix."""


class StorageUnavailable(StorageError):
    """The storage backend could not be reached or answered 5xx: transient, retry later."""


class MediaNotFound(StorageError):
    """No object is stored under the key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no media stored under {key!r}")
        self.key = key


class InvalidMediaKey(StorageError, ValueError):
    """The key is not a safe relative path (traversal, absolute path, odd characters)."""


def validate_key(key: str) -> str:
    """Return `key` unchanged if it is a safe storage key, else raise InvalidMediaKey."""
    if not isinstance(key, str) or not key:
        raise InvalidMediaKey("storage key must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidMediaKey(f"storage key longer than {MAX_KEY_LENGTH} characters")
    if _KEY_RE.fullmatch(key) is None:
        raise InvalidMediaKey(
            f"invalid storage key {key!r}: use '/'-separated segments of letters, digits, "
            "'.', '_' and '-', none starting with '.'"
        )
    return key


def media_key(job_id: uuid.UUID, index: int, ext: str) -> str:
    """The key of output `index` of a generation job: `generations/<job_id>/<index>.<ext>`."""
    if not isinstance(job_id, uuid.UUID):
        raise InvalidMediaKey("job_id must be a UUID")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise InvalidMediaKey("index must be a non-negative integer")
    ext = ext.removeprefix(".").lower()
    if _EXT_RE.fullmatch(ext) is None:
        raise InvalidMediaKey(f"invalid file extension {ext!r}")
    return validate_key(f"generations/{job_id}/{index}.{ext}")


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    sha256: str  # lowercase hex digest of the stored bytes
    content_type: str


class ByteStream(AsyncIterator[bytes]):
    """Chunks of one stored object; releases its connection or file when exhausted or closed.

    Closing is idempotent and also works before the first chunk was read, so a caller that
    gives up early (e.g. a client disconnect) only has to call `aclose()` or use `async with`.
    """

    def __init__(
        self,
        read_chunk: Callable[[], Awaitable[bytes]],
        on_close: Callable[[], Awaitable[None]],
        map_error: Callable[[Exception], Exception] | None = None,
    ) -> None:
        self._read_chunk = read_chunk
        self._on_close = on_close
        self._map_error = map_error
        self._closed = False

    def __aiter__(self) -> ByteStream:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        try:
            chunk = await self._read_chunk()
        except Exception as exc:
            await self.aclose()
            if self._map_error is not None:
                raise self._map_error(exc) from exc
            raise
        except BaseException:
            await self.aclose()
            raise
        if not chunk:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._on_close()

    async def __aenter__(self) -> ByteStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class MediaStream(NamedTuple):
    """What `open_stream` returns; unpacks as `(chunks, content_type, size)`."""

    chunks: ByteStream
    content_type: str
    size: int

    async def aclose(self) -> None:
        await self.chunks.aclose()


@runtime_checkable
class MediaStorage(Protocol):
    """Where generated media lives. Implementations: S3MediaStorage, LocalMediaStorage.

    Create one per process on the event loop that will use it, call `ensure_ready()` at
    start-up and `close()` at shutdown (on the same loop).
    """

    async def ensure_ready(self) -> None:
        """Create the bucket (S3) or root directory (local) if missing; idempotent."""
        ...

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        """Store `data` under `key`, replacing any previous object; atomic per key."""
        ...

    async def open_stream(self, key: str) -> MediaStream:
        """Open the object for streaming; raises MediaNotFound. Close the stream when done."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; a key that is already gone is fine (deleting twice is safe)."""
        ...

    async def presigned_url(self, key: str, expires_seconds: int) -> str | None:
        """A time-limited GET URL (S3), or None when the backend cannot make one (local)."""
        ...

    async def close(self) -> None: ...
