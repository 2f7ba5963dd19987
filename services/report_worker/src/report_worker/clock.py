"""Wall-clock time, behind a protocol so tests can drive the schedule without sleeping."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

# Re-check the wall clock at least this often while sleeping: asyncio sleeps on the monotonic
# clock, so a wall-clock step (NTP) would otherwise shift the tick.
_MAX_NAP_SECONDS = 1.0


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...

    async def sleep_until(self, when: float) -> None:
        """Return once now() >= when (at once if it already is)."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep_until(self, when: float) -> None:
        while (delay := when - time.time()) > 0:  # noqa: ASYNC110 - a deadline, not an event
            await asyncio.sleep(min(delay, _MAX_NAP_SECONDS))
