"""Server-Sent Events on Starlette's StreamingResponse: the wire format and a response that
always runs its clean-up, whether the stream ended, the client left, or it never started."""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, Callable

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # the only line ends of the SSE format
KEEP_ALIVE = b": keep-alive\n\n"  # a comment: clients ignore it


def sse_event(event: str, data: str, event_id: int | None = None) -> bytes:
    """One event. Without `event_id` the client's last event id stays what it was."""
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.extend(f"data: {line}" for line in _LINE_BREAK.split(data))
    return ("\n".join(lines) + "\n\n").encode()


class EventStreamResponse(StreamingResponse):
    media_type = "text/event-stream"

    def __init__(
        self, content: AsyncIterable[bytes], *, on_close: Callable[[], None] | None = None
    ) -> None:
        # no-cache: nothing between may store it; X-Accel-Buffering: nginx passes each event on.
        super().__init__(content, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self._on_close is not None:
                self._on_close()
