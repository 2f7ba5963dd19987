"""The URLs the gateway hands out, on the host the caller used (or, in a webhook body, on
GATEWAY_PUBLIC_URL). Built directly: a named route lookup (`request.url_for`) walks every route
on every call."""

from __future__ import annotations

import uuid


def status_url(base_url: str, job_id: uuid.UUID) -> str:
    """`base_url` ends in a slash, like a request's `base_url`."""
    return f"{base_url}status/{job_id}"


def media_url(base_url: str, job_id: uuid.UUID, index: int) -> str:
    """`base_url` ends in a slash, like a request's `base_url`."""
    return f"{base_url}media/{job_id}/{index}"
