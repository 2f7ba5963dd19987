"""A caller's webhook endpoint for tests: a real HTTP(S) server on a free port, in the test's
event loop, that records every POST and answers from a script."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from testkit.processes import free_port

NEVER_ANSWER = 0  # in a script: hold the request open until the receiver closes
WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class ReceivedWebhook:
    path: str
    headers: dict[str, str]  # names lowercased
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


class WebhookReceiver:
    """Records every POST; answers each path from its script of statuses (NEVER_ANSWER: no
    answer at all), then 200. A 3xx answer points to `/elsewhere`."""

    def __init__(self) -> None:
        self.received: list[ReceivedWebhook] = []
        self.server_names: list[str | None] = []  # TLS SNI of each connection
        self.hanging = 0  # requests held open right now
        self.base_url = ""
        self._scripts: dict[str, deque[int]] = {}
        self._changed = asyncio.Condition()
        self._release = asyncio.Event()

    def url(self, path: str = "/hook") -> str:
        return f"{self.base_url}{path}"

    def script(self, path: str, *statuses: int) -> None:
        self._scripts.setdefault(path, deque()).extend(statuses)

    def at(self, path: str = "/hook") -> list[ReceivedWebhook]:
        return [r for r in self.received if r.path == path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        script = self._scripts.get(request.path)
        status = script.popleft() if script else 200
        async with self._changed:
            self.received.append(ReceivedWebhook(request.path, headers, body))
            if status == NEVER_ANSWER:
                self.hanging += 1
            self._changed.notify_all()
        if status == NEVER_ANSWER:
            await self._release.wait()
            raise ConnectionResetError("the receiver closed")
        location = {"Location": self.url("/elsewhere")} if 300 <= status < 400 else None
        return web.Response(status=status, headers=location)

    async def wait_for(
        self, predicate: Callable[[list[ReceivedWebhook]], bool], path: str = "/hook"
    ) -> list[ReceivedWebhook]:
        """The requests at `path`, once `predicate` holds for them (within WAIT_SECONDS)."""
        async with asyncio.timeout(WAIT_SECONDS), self._changed:
            await self._changed.wait_for(lambda: predicate(self.at(path)))
        return self.at(path)

    def _record_server_name(self, _sock: Any, name: str | None, _context: Any) -> None:
        self.server_names.append(name)


@asynccontextmanager
async def webhook_receiver(
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[WebhookReceiver]:
    """A receiver on 127.0.0.1 and a free port (https with `ssl_context`)."""
    receiver = WebhookReceiver()
    if ssl_context is not None:
        ssl_context.sni_callback = receiver._record_server_name
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context).start()
    scheme = "http" if ssl_context is None else "https"
    receiver.base_url = f"{scheme}://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        receiver._release.set()  # no handler left waiting: cleanup would wait for it
        await runner.cleanup()
