"""ASGI middleware both APIs share: request ids with one access-log line per request, and a
request body size limit enforced before anything parses the body."""

from __future__ import annotations

import json
import logging
import time
import uuid

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.logging import request_id_var
from core.metrics import HTTP_REQUEST_DURATION, KNOWN_METHODS, UNMATCHED_ROUTE

access_log = logging.getLogger("access")

_PATH_MAX_CHARS = 200


class RequestContextMiddleware:
    """Tag each request with an id (X-Request-ID if the client sent one, else a new one),
    return it in X-Request-ID, log one JSON line per request: method, path (never the
    query string, which may carry secrets), status and duration, and count it in
    `http_request_duration_seconds` by route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming[:64] if incoming.isprintable() and incoming else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        status = 500  # if the app fails before it answers, ServerErrorMiddleware sends a 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"].append((b"x-request-id", request_id.encode("latin-1")))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")  # set by the router: the template, /status/{job_id}
            method = scope["method"]
            HTTP_REQUEST_DURATION.labels(
                method if method in KNOWN_METHODS else "other",
                getattr(route, "path", UNMATCHED_ROUTE),
                str(status),
            ).observe(seconds)
            client = scope.get("client")
            access_log.info(
                "%s %s %d",
                scope["method"],
                scope["path"][:_PATH_MAX_CHARS],
                status,
                extra={
                    "method": scope["method"],
                    "path": scope["path"][:_PATH_MAX_CHARS],
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "client": client[0] if client else None,
                },
            )
            request_id_var.reset(token)


def _too_large_detail(max_bytes: int) -> str:
    return f"Request body is larger than this service's limit of {max_bytes} bytes"


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a body without a Content-Length grows past the limit; the
    app's exception handlers turn it into the JSON 413 (FastAPI re-raises HTTPExceptions met
    while it reads a body, where it would turn any other error into a 400)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, _too_large_detail(max_bytes))


class BodySizeLimitMiddleware:
    """413 for a body over `max_bytes`: at once when Content-Length says so (nothing is read,
    nothing is parsed), else as soon as the streamed body passes the limit."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._too_large(send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)

    async def _too_large(self, send: Send) -> None:
        body = json.dumps({"detail": _too_large_detail(self.max_bytes)}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
