"""One contract, two backends: every MediaStorage must pass these against real I/O.

S3 runs against moto in server mode (a real HTTP endpoint, see testkit.s3), each test in its
own fresh bucket; local runs in a fresh temporary directory.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
from prometheus_client import REGISTRY

from core.storage import (
    InvalidMediaKey,
    MediaNotFound,
    MediaStorage,
    StoredObject,
    media_key,
    validate_key,
)
from core.storage.local import LocalMediaStorage
from core.storage.s3 import S3MediaStorage
from testkit.s3 import S3Endpoint
from testkit.storage import read_all

BACKENDS = ["local", "s3"]


def make_s3(moto_s3: S3Endpoint, bucket: str, **kwargs: object) -> S3MediaStorage:
    return S3MediaStorage(
        endpoint=moto_s3.endpoint,
        access_key=moto_s3.access_key,
        secret_key=moto_s3.secret_key,
        bucket=bucket,
        region=moto_s3.region,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture(params=BACKENDS)
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MediaStorage]:
    backend: MediaStorage
    if request.param == "s3":
        moto_s3: S3Endpoint = request.getfixturevalue("moto_s3")
        backend = make_s3(moto_s3, moto_s3.new_bucket())
    else:
        backend = LocalMediaStorage(tmp_path / "media")
    await backend.ensure_ready()
    try:
        yield backend
    finally:
        await backend.close()


def key() -> str:
    return media_key(uuid.uuid4(), 0, "png")


async def test_put_then_read_back_same_bytes_size_sha_and_type(storage: MediaStorage) -> None:
    data = os.urandom(1234)
    k = key()

    stored = await storage.put(k, data, "image/png")

    assert stored == StoredObject(k, len(data), hashlib.sha256(data).hexdigest(), "image/png")
    stream = await storage.open_stream(k)
    assert stream.content_type == "image/png"
    assert stream.size == len(data)
    assert await read_all(stream) == data


async def test_open_stream_unpacks_and_streams_large_object_in_chunks(
    storage: MediaStorage,
) -> None:
    data = os.urandom(300 * 1024)
    k = media_key(uuid.uuid4(), 3, "webp")
    await storage.put(k, data, "image/webp")

    chunks, content_type, size = await storage.open_stream(k)
    received = [chunk async for chunk in chunks]

    assert len(received) > 1
    assert b"".join(received) == data
    assert (content_type, size) == ("image/webp", len(data))


async def test_put_overwrites_previous_object(storage: MediaStorage) -> None:
    k = key()
    await storage.put(k, b"old", "image/png")
    await storage.put(k, b"newer bytes", "image/jpeg")

    stream = await storage.open_stream(k)
    assert await read_all(stream) == b"newer bytes"
    assert (stream.content_type, stream.size) == ("image/jpeg", len(b"newer bytes"))


async def test_empty_object_round_trips(storage: MediaStorage) -> None:
    k = key()
    stored = await storage.put(k, b"", "image/png")
    assert stored.size == 0
    assert await read_all(await storage.open_stream(k)) == b""


async def test_missing_key_raises_media_not_found(storage: MediaStorage) -> None:
    k = key()
    with pytest.raises(MediaNotFound) as info:
        await storage.open_stream(k)
    assert info.value.key == k


async def test_puts_are_measured_by_backend(storage: MediaStorage) -> None:
    backend = "local" if isinstance(storage, LocalMediaStorage) else "s3"

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"backend": backend, **labels}) or 0.0

    bytes_before = sample("storage_put_bytes_total")
    puts_before = sample("storage_put_duration_seconds_count", outcome="ok")
    await storage.put(key(), b"x" * 1234, "image/png")
    assert sample("storage_put_bytes_total") == bytes_before + 1234
    assert sample("storage_put_duration_seconds_count", outcome="ok") == puts_before + 1


async def test_delete_removes_the_object_and_deleting_again_is_fine(
    storage: MediaStorage,
) -> None:
    k, kept = key(), key()
    await storage.put(k, b"gone soon", "image/png")
    await storage.put(kept, b"stays", "image/png")
    await storage.delete(k)
    with pytest.raises(MediaNotFound):
        await storage.open_stream(k)
    await storage.delete(k)  # a crash between delete and its record repeats it
    assert await read_all(await storage.open_stream(kept)) == b"stays"


async def test_abandoned_stream_can_be_closed_and_storage_keeps_working(
    storage: MediaStorage,
) -> None:
    k = key()
    await storage.put(k, os.urandom(200 * 1024), "image/png")
    for _ in range(3):
        stream = await storage.open_stream(k)
        assert await stream.chunks.__anext__()  # read one chunk, abandon the rest
        await stream.aclose()
        assert [c async for c in stream.chunks] == []
    assert len(await read_all(await storage.open_stream(k))) == 200 * 1024


async def test_ensure_ready_is_idempotent(storage: MediaStorage) -> None:
    k = key()
    await storage.put(k, b"kept", "image/png")
    await storage.ensure_ready()
    await storage.ensure_ready()
    assert await read_all(await storage.open_stream(k)) == b"kept"


BAD_KEYS = [
    "",
    "../etc/passwd",
    "generations/../../secret",
    "generations/./x.png",
    "/etc/passwd",
    "generations//x.png",
    "generations/x.png/",
    ".hidden",
    "generations/.x.png.meta.json",
    "a\\b.png",
    "a b.png",
    "a\x00b.png",
    "gen/é.png",
    "x" * 600,
]


@pytest.mark.parametrize("bad", BAD_KEYS)
async def test_key_validation_rejects_traversal_and_odd_keys(
    storage: MediaStorage, bad: str
) -> None:
    with pytest.raises(InvalidMediaKey):
        await storage.put(bad, b"x", "image/png")
    with pytest.raises(InvalidMediaKey):
        await storage.open_stream(bad)
    with pytest.raises(InvalidMediaKey):
        await storage.presigned_url(bad, 60)


async def test_presigned_url_serves_the_same_bytes(storage: MediaStorage) -> None:
    data = os.urandom(4096)
    k = key()
    await storage.put(k, data, "image/png")

    url = await storage.presigned_url(k, 60)

    if isinstance(storage, LocalMediaStorage):
        assert url is None
        return
    assert url is not None
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "image/png"


def test_media_key_layout() -> None:
    job_id = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert media_key(job_id, 0, "png") == f"generations/{job_id}/0.png"
    assert media_key(job_id, 2, ".WEBP") == f"generations/{job_id}/2.webp"


@pytest.mark.parametrize(
    ("index", "ext"), [(-1, "png"), (0, ""), (0, "../png"), (0, "p/ng"), (0, "png\n")]
)
def test_media_key_rejects_bad_parts(index: int, ext: str) -> None:
    with pytest.raises(InvalidMediaKey):
        media_key(uuid.uuid4(), index, ext)


def test_invalid_key_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        validate_key("../x")


async def test_many_concurrent_puts_and_reads(storage: MediaStorage) -> None:
    job = uuid.uuid4()
    payloads = {media_key(job, i, "png"): os.urandom(2048 + i) for i in range(12)}

    async with anyio.create_task_group() as tg:
        for k, data in payloads.items():
            tg.start_soon(storage.put, k, data, "image/png")

    for k, data in payloads.items():
        assert await read_all(await storage.open_stream(k)) == data
