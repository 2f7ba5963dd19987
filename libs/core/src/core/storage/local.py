"""Media on the local file system, for `make run` and single-host setups.

Each object is a plain file at `<root>/<key>`, plus a small JSON sidecar `.<name>.meta.json`
beside it holding the content type and sha256. Valid keys never have a segment starting with
".", so sidecars and temp files can never collide with a key.

Writes are atomic: bytes go to a temp file in the target directory, are fsynced, then renamed
over the final name, and the directory is fsynced. A crash leaves either the old object or the
new one under the key, never a partial file. Blocking file work runs in a worker thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mimetypes
import os
import secrets
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from core.storage.base import (
    CHUNK_SIZE,
    DEFAULT_CONTENT_TYPE,
    ByteStream,
    MediaNotFound,
    MediaStream,
    StorageError,
    StorageUnavailable,
    StoredObject,
    validate_key,
)
from core.storage.metrics import measured_put

TEMP_SUFFIX = ".tmp"


class LocalMediaStorage:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(os.path.abspath(root))

    def _path(self, key: str) -> Path:
        path = self.root.joinpath(*validate_key(key).split("/"))
        if os.path.commonpath([self.root, path]) != str(self.root):  # defence in depth
            raise StorageError(f"key {key!r} escapes the storage root")
        return path

    @staticmethod
    def _meta_path(path: Path) -> Path:
        return path.with_name(f".{path.name}.meta.json")

    async def ensure_ready(self) -> None:
        await anyio.Path(self.root).mkdir(parents=True, exist_ok=True)

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        path = self._path(key)
        obj = StoredObject(
            key=key,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            content_type=content_type or DEFAULT_CONTENT_TYPE,
        )
        meta = json.dumps({"content_type": obj.content_type, "sha256": obj.sha256}).encode()
        try:
            with measured_put("local", len(data)):
                await anyio.to_thread.run_sync(self._write_sync, path, data, meta)
        except OSError as exc:  # disk full, I/O error, permissions: retry later
            raise StorageUnavailable(f"local media write failed for {key!r}: {exc}") from exc
        return obj

    def _write_sync(self, path: Path, data: bytes, meta: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Sidecar first: if we crash before the data rename, the key simply does not exist yet.
        _atomic_write(self._meta_path(path), meta)
        _atomic_write(path, data)
        _fsync_dir(path.parent)

    async def open_stream(self, key: str) -> MediaStream:
        path = self._path(key)
        try:
            f = await anyio.open_file(path, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise MediaNotFound(key) from exc
        except OSError as exc:
            raise StorageUnavailable(f"local media read failed for {key!r}: {exc}") from exc
        try:
            size = await _fstat_size(f)
            meta = await anyio.to_thread.run_sync(self._read_meta, path)
        except BaseException:
            await f.aclose()
            raise
        content_type = meta.get("content_type") or _guess_type(path)

        async def read_chunk() -> bytes:
            return await f.read(CHUNK_SIZE)

        return MediaStream(ByteStream(read_chunk, f.aclose), content_type, size)

    def _read_meta(self, path: Path) -> dict[str, str]:
        try:
            raw: Any = json.loads(self._meta_path(path).read_bytes())
        except (OSError, ValueError):
            return {}
        if not isinstance(raw, dict):
            return {}
        return {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}

    async def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            await anyio.to_thread.run_sync(self._delete_sync, path)
        except OSError as exc:
            raise StorageUnavailable(f"local media delete failed for {key!r}: {exc}") from exc

    def _delete_sync(self, path: Path) -> None:
        # Data first: once it is gone the key no longer exists, whatever happens to the sidecar.
        path.unlink(missing_ok=True)
        self._meta_path(path).unlink(missing_ok=True)

    async def presigned_url(self, key: str, expires_seconds: int) -> str | None:
        validate_key(key)
        return None

    async def close(self) -> None:
        return None


async def _fstat_size(f: anyio.AsyncFile[bytes]) -> int:
    stat = await anyio.to_thread.run_sync(os.fstat, f.wrapped.fileno())
    return stat.st_size


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}{TEMP_SUFFIX}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. platforms that cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _guess_type(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or DEFAULT_CONTENT_TYPE
