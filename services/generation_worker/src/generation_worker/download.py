"""Output policy on top of the Replicate client's download: allowed hosts only, a size cap,
and real image bytes of the declared type."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from core.replicate import DownloadTooLarge, ReplicateClient

# content type -> file extension
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
    client: ReplicateClient,
    url: str,
    *,
    allowed_hosts: tuple[str, ...],
    max_bytes: int,
    timeout_seconds: float,
) -> Downloaded:
    """Raises OutputRejected or the client's PermanentError (permanent), or its TransientError
    (429/5xx/connection trouble: worth retrying)."""
    if not host_allowed(url, allowed_hosts):
        host = urlsplit(url).hostname or url[:50]
        raise OutputRejected(f"output host {host!r} is not in the allowed output hosts")
    try:
        data, declared = await client.download(url, max_bytes=max_bytes, timeout=timeout_seconds)
    except DownloadTooLarge:
        raise OutputRejected(f"output exceeds the {max_bytes}-byte cap") from None
    declared = declared.lower()
    if declared not in IMAGE_TYPES:
        raise OutputRejected(f"output is {declared or 'untyped'}, not an image")
    actual = sniff_image(data)
    if actual != declared:
        raise OutputRejected(
            f"output claims {declared} but its bytes are {actual or 'not an image'}"
        )
    return Downloaded(data=data, content_type=declared, extension=IMAGE_TYPES[declared])
