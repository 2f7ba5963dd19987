"""Fetch a prediction's output safely: allowed hosts only, a size cap, and real image bytes."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

# content type -> (file extension, magic-byte check)
IMAGE_TYPES: dict[str, str] = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
}


class OutputRejected(Exception):
    """A permanent problem with an output: bad host, too large, not an image."""


@dataclass(frozen=True, slots=True)
class Downloaded:
    data: bytes
    content_type: str
    extension: str


def host_allowed(url: str, allowed: tuple[str, ...]) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    host = parts.hostname.lower()
    for pattern in allowed:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


def sniff_image(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


async def download_image(
    client: httpx.AsyncClient,
    url: str,
    *,
    allowed_hosts: tuple[str, ...],
    max_bytes: int,
    headers: dict[str, str] | None = None,
) -> Downloaded:
    """Raises OutputRejected (permanent) or httpx errors / TransientDownloadError (transient)."""
    if not host_allowed(url, allowed_hosts):
        host = urlsplit(url).hostname or url[:50]
        raise OutputRejected(f"output host {host!r} is not in the allowed output hosts")
    async with client.stream("GET", url, headers=headers, follow_redirects=False) as response:
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientDownloadError(f"output download answered {response.status_code}")
        if response.status_code != 200:
            raise OutputRejected(f"output download answered {response.status_code}")
        declared = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if declared not in IMAGE_TYPES:
            raise OutputRejected(f"output is {declared or 'untyped'}, not an image")
        length = response.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            raise OutputRejected(f"output is {length} bytes, over the {max_bytes}-byte cap")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise OutputRejected(f"output exceeds the {max_bytes}-byte cap")
            chunks.append(chunk)
    data = b"".join(chunks)
    actual = sniff_image(data)
    if actual != declared:
        raise OutputRejected(
            f"output claims {declared} but its bytes are {actual or 'not an image'}"
        )
    return Downloaded(data=data, content_type=declared, extension=IMAGE_TYPES[declared])


class TransientDownloadError(Exception):
    """The output host had a passing problem (429/5xx); worth retrying."""
