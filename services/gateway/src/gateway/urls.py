"""The URLs the gateway hands out, on the host the caller used. Built directly: a named route
lookup (`request.url_for`) walks every route on every call."""

from __future__ import annotations

import uuid

from fastapi import Request


def status_url(request: Request, job_id: uuid.UUID) -> str:
    return f"{request.base_url}status/{job_id}"


def media_url(request: Request, job_id: uuid.UUID, index: int) -> str:
    return f"{request.base_url}media/{job_id}/{index}"
