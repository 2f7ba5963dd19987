"""Backend-specific behaviour: S3 bucket creation, metadata and outages; local atomic writes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import boto3  # type: ignore[import-untyped]
import pytest

from core.storage import (
    MediaNotFound,
    StorageError,
    StorageSettings,
    StorageUnavailable,
    create_storage,
    media_key,
)
from core.storage.local import LocalMediaStorage
from core.storage.s3 import S3MediaStorage
from testkit.processes import free_port
from testkit.s3 import S3Endpoint
from testkit.storage import read_all


def make_s3(
    moto_s3: S3Endpoint, bucket: str, *, endpoint: str | None = None, max_connections: int = 20
) -> S3MediaStorage:
    return S3MediaStorage(
        endpoint=endpoint or moto_s3.endpoint,
        access_key=moto_s3.access_key,
        secret_key=moto_s3.secret_key,
        bucket=bucket,
        region=moto_s3.region,
        max_connections=max_connections,
        timeout_seconds=5,
    )


def boto(moto_s3: S3Endpoint) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=moto_s3.url,
        aws_access_key_id=moto_s3.access_key,
        aws_secret_access_key=moto_s3.secret_key,
        region_name=moto_s3.region,
    )


def bucket_names(moto_s3: S3Endpoint) -> set[str]:
    return {b["Name"] for b in boto(moto_s3).list_buckets()["Buckets"]}


# --- S3 ----------------------------------------------------------------------------------------


async def test_s3_ensure_ready_creates_missing_bucket(moto_s3: S3Endpoint) -> None:
    bucket = moto_s3.new_bucket()
    storage = make_s3(moto_s3, bucket)
    try:
        assert bucket not in await anyio.to_thread.run_sync(bucket_names, moto_s3)
        await storage.ensure_ready()
        assert bucket in await anyio.to_thread.run_sync(bucket_names, moto_s3)
        await storage.ensure_ready()  # already there: no error
    finally:
        await storage.close()


async def test_s3_ensure_ready_survives_concurrent_creators(moto_s3: S3Endpoint) -> None:
    bucket = moto_s3.new_bucket()
    storages = [make_s3(moto_s3, bucket) for _ in range(6)]
    try:
        async with anyio.create_task_group() as tg:
            for s in storages:
                tg.start_soon(s.ensure_ready)
        await storages[0].put("race/ok.txt", b"ok", "text/plain")
        assert await read_all(await storages[-1].open_stream("race/ok.txt")) == b"ok"
    finally:
        for s in storages:
            await s.close()


async def test_s3_put_stores_sha256_as_object_metadata(moto_s3: S3Endpoint) -> None:
    storage = make_s3(moto_s3, moto_s3.new_bucket())
    data = os.urandom(777)
    key = media_key(uuid.uuid4(), 1, "jpg")
    try:
        await storage.ensure_ready()
        await storage.put(key, data, "image/jpeg")
        head = await anyio.to_thread.run_sync(
            lambda: boto(moto_s3).head_object(Bucket=storage.bucket, Key=key)
        )
    finally:
        await storage.close()
    assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert head["ContentType"] == "image/jpeg"
    assert head["ContentLength"] == len(data)


async def test_s3_abandoned_streams_release_their_connection(moto_s3: S3Endpoint) -> None:
    # With a pool of one connection, a leaked response would block the next request forever.
    storage = make_s3(moto_s3, moto_s3.new_bucket(), max_connections=1)
    key = media_key(uuid.uuid4(), 0, "png")
    try:
        await storage.ensure_ready()
        data = os.urandom(4 * 1024 * 1024)
        await storage.put(key, data, "image/png")
        kept = []  # hold every stream so garbage collection cannot release them for us
        with anyio.fail_after(20):  # a guard against hanging, not a timing assertion
            for _ in range(3):
                stream = await storage.open_stream(key)
                kept.append(stream)
                await stream.aclose()  # never read
                stream = await storage.open_stream(key)
                kept.append(stream)
                await stream.chunks.__anext__()  # partly read
                await stream.aclose()
            assert await read_all(await storage.open_stream(key)) == data
    finally:
        await storage.close()


async def test_s3_missing_bucket_is_a_storage_error_not_not_found(moto_s3: S3Endpoint) -> None:
    storage = make_s3(moto_s3, moto_s3.new_bucket())  # ensure_ready never called
    try:
        with pytest.raises(StorageError) as info:
            await storage.put("a/b.png", b"x", "image/png")
        assert not isinstance(info.value, StorageUnavailable | MediaNotFound)
    finally:
        await storage.close()


async def test_s3_endpoint_down_raises_storage_unavailable(moto_s3: S3Endpoint) -> None:
    storage = make_s3(moto_s3, "media", endpoint=f"127.0.0.1:{free_port()}")
    key = media_key(uuid.uuid4(), 0, "png")
    try:
        with pytest.raises(StorageUnavailable):
            await storage.ensure_ready()
        with pytest.raises(StorageUnavailable):
            await storage.put(key, b"x", "image/png")
        with pytest.raises(StorageUnavailable):
            await storage.open_stream(key)
    finally:
        await storage.close()


@pytest.fixture
async def http_503_endpoint() -> AsyncIterator[str]:
    """A server answering every request with 503 (an S3 outage that still accepts TCP)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                writer.write(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                    b"Content-Length: 4\r\n\r\nbusy"
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def test_s3_5xx_raises_storage_unavailable(
    moto_s3: S3Endpoint, http_503_endpoint: str
) -> None:
    storage = make_s3(moto_s3, "media", endpoint=http_503_endpoint)
    key = media_key(uuid.uuid4(), 0, "png")
    try:
        with pytest.raises(StorageUnavailable):
            await storage.put(key, b"x", "image/png")
        with pytest.raises(StorageUnavailable):
            await storage.open_stream(key)
    finally:
        await storage.close()


async def test_s3_presigned_url_rejects_out_of_range_expiry(moto_s3: S3Endpoint) -> None:
    storage = make_s3(moto_s3, moto_s3.new_bucket())
    try:
        with pytest.raises(ValueError, match="expires_seconds"):
            await storage.presigned_url("a/b.png", 0)
        with pytest.raises(ValueError, match="expires_seconds"):
            await storage.presigned_url("a/b.png", 8 * 24 * 3600)
    finally:
        await storage.close()


# --- local -------------------------------------------------------------------------------------


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


async def test_local_stores_plain_files_under_the_key_and_leaves_no_temp_files(
    tmp_path: Path,
) -> None:
    storage = LocalMediaStorage(tmp_path / "media")
    await storage.ensure_ready()
    job = uuid.uuid4()
    data = os.urandom(5000)
    for i in range(3):
        await storage.put(media_key(job, i, "png"), data, "image/png")
    await storage.put(media_key(job, 0, "png"), b"replaced", "image/png")

    final = tmp_path / "media" / "generations" / str(job)
    assert (final / "0.png").read_bytes() == b"replaced"
    assert (final / "1.png").read_bytes() == data
    assert not [p for p in all_files(tmp_path) if p.name.endswith(".tmp")]
    assert {p.name for p in all_files(tmp_path) if not p.name.startswith(".")} == {
        "0.png",
        "1.png",
        "2.png",
    }


@pytest.mark.parametrize("failure", ["write", "fsync"])
async def test_local_failed_write_leaves_no_final_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    storage = LocalMediaStorage(tmp_path / "media")
    await storage.ensure_ready()
    new_key = media_key(uuid.uuid4(), 0, "png")
    old_key = media_key(uuid.uuid4(), 0, "png")
    await storage.put(old_key, b"old image", "image/png")
    payload = b"IMAGE" + os.urandom(8192)
    real_write = os.write

    def write_half_then_disk_full(fd: int, data: bytes) -> int:
        if bytes(data[:5]) == b"IMAGE":  # the image bytes, not the metadata sidecar
            real_write(fd, data[: len(data) // 2])
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    def fsync_fails(fd: int) -> None:
        raise OSError(5, "Input/output error")

    # Patch the os module that core.storage.local uses.
    if failure == "write":
        monkeypatch.setattr(os, "write", write_half_then_disk_full)
    else:
        monkeypatch.setattr(os, "fsync", fsync_fails)
    with pytest.raises(StorageUnavailable):
        await storage.put(new_key, payload, "image/png")
    with pytest.raises(StorageUnavailable):
        await storage.put(old_key, payload, "image/png")
    monkeypatch.undo()

    with pytest.raises(MediaNotFound):
        await storage.open_stream(new_key)
    assert await read_all(await storage.open_stream(old_key)) == b"old image"
    assert not [p for p in all_files(tmp_path) if p.name.endswith(".tmp")]


async def test_local_ensure_ready_creates_nested_root(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b" / "media"
    storage = LocalMediaStorage(root)
    await storage.ensure_ready()
    await storage.ensure_ready()
    assert root.is_dir()


async def test_local_directory_key_is_not_found(tmp_path: Path) -> None:
    storage = LocalMediaStorage(tmp_path)
    await storage.put("generations/x/0.png", b"a", "image/png")
    with pytest.raises(MediaNotFound):
        await storage.open_stream("generations/x")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files in /proc")
async def test_local_streams_close_their_files(tmp_path: Path) -> None:
    storage = LocalMediaStorage(tmp_path)
    key = media_key(uuid.uuid4(), 0, "png")
    data = os.urandom(200 * 1024)
    await storage.put(key, data, "image/png")
    open_files = len(os.listdir("/proc/self/fd"))
    kept = []  # hold every stream so garbage collection cannot close the files for us
    for _ in range(20):
        stream = await storage.open_stream(key)
        kept.append(stream)
        assert await read_all(stream) == data  # read to the end
        stream = await storage.open_stream(key)
        kept.append(stream)
        await stream.chunks.__anext__()  # partly read, then given up
        await stream.aclose()
    assert len(os.listdir("/proc/self/fd")) < open_files + 10  # not 40 more


# --- settings ----------------------------------------------------------------------------------


STORAGE_ENV = [
    "STORAGE_BACKEND",
    "STORAGE_LOCAL_ROOT",
    "S3_ENDPOINT",
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
    "S3_BUCKET",
    "S3_REGION",
    "S3_SECURE",
    "S3_PRESIGN_EXPIRY_SECONDS",
    "S3_PUBLIC_URL",
]


def test_storage_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in STORAGE_ENV:
        monkeypatch.delenv(name, raising=False)
    s = StorageSettings(_env_file=None)
    assert s.storage_backend == "local"
    assert s.storage_local_root == "./data/media"
    assert (s.s3_endpoint, s.s3_access_key, s.s3_bucket) == (
        "127.0.0.1:9000",
        "minioadmin",
        "media",
    )
    assert s.s3_secret_key.get_secret_value() == "minioadmin"
    assert (s.s3_region, s.s3_secure, s.s3_presign_expiry_seconds) == ("us-east-1", False, 900)
    assert isinstance(create_storage(s), LocalMediaStorage)


def test_storage_settings_from_env_selects_s3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_BACKEND", "s3")
    monkeypatch.setenv("S3_ENDPOINT", "minio:9000")
    monkeypatch.setenv("S3_BUCKET", "pictures")
    monkeypatch.setenv("S3_SECURE", "true")
    s = StorageSettings(_env_file=None)
    storage = create_storage(s)
    assert isinstance(storage, S3MediaStorage)
    assert (storage.endpoint, storage.bucket) == ("minio:9000", "pictures")


def test_importing_the_storage_package_loads_no_backend() -> None:
    # The backends import the settings (and so the package); the package must not import them.
    code = (
        "import sys, core.storage\n"
        "loaded = {'core.storage.s3', 'core.storage.local'} & set(sys.modules)\n"
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("endpoint", ["http://minio:9000", "minio:9000/path"])
def test_storage_settings_reject_endpoint_with_scheme(endpoint: str) -> None:
    with pytest.raises(ValueError, match="S3_ENDPOINT"):
        StorageSettings(_env_file=None, s3_endpoint=endpoint)
