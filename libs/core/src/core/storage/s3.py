"""Media in an S3-compatible bucket (MinIO in compose, moto in tests) through miniopy-async.

The aiohttp session inside `Minio` belongs to the event loop that first used it, so the client
is created lazily on the running loop and refuses to be used from another one; `close()` must
run on that loop. Transport failures and 5xx answers raise StorageUnavailable (transient),
missing keys MediaNotFound, anything else StorageError.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import aiohttp
from aiohttp_retry import ExponentialRetry, RetryClient
from miniopy_async.api import Minio
from miniopy_async.error import InvalidResponseError, MinioException, S3Error, ServerError

from core.storage.base import (
    CHUNK_SIZE,
    DEFAULT_CONTENT_TYPE,
    MAX_PRESIGN_SECONDS,
    ByteStream,
    MediaNotFound,
    MediaStream,
    StorageError,
    StorageUnavailable,
    StoredObject,
    validate_key,
)
from core.storage.metrics import measured_put
from core.storage.settings import StorageSettings

T = TypeVar("T")

SHA256_META = "sha256"  # stored as the x-amz-meta-sha256 header
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchObject", "NotFound"})
_TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "RequestTimeout",
        "XMinioServerNotInitialized",
    }
)
_BUCKET_TAKEN_CODES = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})


def _status_of(exc: MinioException) -> int:
    if isinstance(exc, ServerError):
        return exc.status_code
    if isinstance(exc, S3Error):
        return int(getattr(exc.response, "status", 0) or 0)
    if isinstance(exc, InvalidResponseError):
        return int(getattr(exc, "_code", 0) or 0)
    return 0


def translate_error(exc: BaseException, key: str | None = None) -> Exception:
    """Map a miniopy-async / aiohttp failure onto the storage error taxonomy."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, S3Error) and exc.code in _NOT_FOUND_CODES and key is not None:
        return MediaNotFound(key)
    if isinstance(exc, aiohttp.ClientError | TimeoutError | ConnectionError):
        return StorageUnavailable(f"object storage unreachable: {exc!r}")
    if isinstance(exc, MinioException):
        status = _status_of(exc)
        code = exc.code if isinstance(exc, S3Error) else None
        if status >= 500 or status == 429 or code in _TRANSIENT_CODES:
            return StorageUnavailable(f"object storage error (HTTP {status}): {exc}")
        return StorageError(f"object storage refused the request (HTTP {status}): {exc}")
    if isinstance(exc, OSError):
        return StorageUnavailable(f"object storage unreachable: {exc!r}")
    return StorageError(f"object storage failure: {exc!r}")


class S3MediaStorage:
    def __init__(
        self,
        *,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        region: str = "us-east-1",
        secure: bool = False,
        public_url: str | None = None,
        timeout_seconds: float = 30.0,
        max_connections: int = 20,
    ) -> None:
        self.endpoint = endpoint
        self.bucket = bucket
        self.region = region
        self._access_key = access_key
        self._secret_key = secret_key
        self._secure = secure
        self._public_url = public_url
        self._timeout = timeout_seconds
        self._max_connections = max_connections
        self._client: Minio | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_settings(cls, settings: StorageSettings) -> S3MediaStorage:
        return cls(
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key.get_secret_value(),
            bucket=settings.s3_bucket,
            region=settings.s3_region,
            secure=settings.s3_secure,
            public_url=settings.s3_public_url,
            timeout_seconds=settings.s3_timeout_seconds,
            max_connections=settings.s3_max_connections,
        )

    def _get_client(self) -> Minio:
        loop = asyncio.get_running_loop()
        if self._client is not None:
            if self._loop is not loop:
                raise RuntimeError(
                    "S3MediaStorage is bound to the event loop that first used it; "
                    "create one storage per loop"
                )
            return self._client
        session = RetryClient(
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=self._timeout, sock_read=self._timeout
                ),
            ),
            # A couple of quick in-request retries on 5xx; longer outages surface as
            # StorageUnavailable and the caller (the worker's Retries middleware) backs off.
            retry_options=ExponentialRetry(
                attempts=3, start_timeout=0.1, statuses={500, 502, 503, 504}
            ),
        )
        self._client = Minio(
            self.endpoint,
            access_key=self._access_key,
            secret_key=self._secret_key,
            secure=self._secure,
            region=self.region,
            session=session,
            server_url=self._public_url,
        )
        self._loop = loop
        return self._client

    async def _call(self, op: Callable[[Minio], Awaitable[T]], key: str | None = None) -> T:
        client = self._get_client()
        try:
            return await op(client)
        except (TimeoutError, MinioException, aiohttp.ClientError, OSError) as exc:
            raise translate_error(exc, key) from exc

    async def ensure_ready(self) -> None:
        if await self._call(lambda c: c.bucket_exists(self.bucket)):
            return
        try:
            await self._call(lambda c: c.make_bucket(self.bucket))
        except StorageError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, S3Error) and cause.code in _BUCKET_TAKEN_CODES):
                raise
            # Lost a creation race (or the name is taken): fine if we can use the bucket.
            if not await self._call(lambda c: c.bucket_exists(self.bucket)):
                raise

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        validate_key(key)
        obj = StoredObject(
            key=key,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            content_type=content_type or DEFAULT_CONTENT_TYPE,
        )
        with measured_put("s3", len(data)):
            await self._call(
                lambda c: c.put_object(
                    self.bucket,
                    key,
                    io.BytesIO(data),
                    len(data),
                    content_type=obj.content_type,
                    metadata={SHA256_META: obj.sha256},
                ),
                key,
            )
        return obj

    async def open_stream(self, key: str) -> MediaStream:
        validate_key(key)
        response: aiohttp.ClientResponse = await self._call(
            lambda c: c.get_object(self.bucket, key), key
        )
        try:
            content_type = response.headers.get("Content-Type") or DEFAULT_CONTENT_TYPE
            size = int(response.headers.get("Content-Length", "0"))
        except BaseException:
            response.release()
            raise

        async def read_chunk() -> bytes:
            return await response.content.read(CHUNK_SIZE)

        async def release() -> None:
            # Back to the pool if the body was read to the end, else drop the connection.
            if response.content.at_eof():
                response.release()
            else:
                response.close()

        def map_error(exc: Exception) -> Exception:
            return translate_error(exc, key)

        return MediaStream(ByteStream(read_chunk, release, map_error), content_type, size)

    async def delete(self, key: str) -> None:
        validate_key(key)  # S3 answers a missing key with success: deleting twice is safe
        await self._call(lambda c: c.remove_object(self.bucket, key), key)

    async def presigned_url(self, key: str, expires_seconds: int) -> str | None:
        validate_key(key)
        if not 1 <= expires_seconds <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"expires_seconds must be between 1 and {MAX_PRESIGN_SECONDS}")
        url: str = await self._call(
            lambda c: c.presigned_get_object(
                self.bucket, key, expires=timedelta(seconds=expires_seconds)
            ),
            key,
        )
        return url

    async def close(self) -> None:
        client, self._client, self._loop = self._client, None, None
        if client is not None:
            await client.close_session()  # type: ignore[no-untyped-call]
