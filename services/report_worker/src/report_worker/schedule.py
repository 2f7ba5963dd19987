"""Wall-clock aligned ticks: tick n fires at n * interval seconds since the epoch.

The next tick is always computed from the clock, never by sleeping a fixed interval after the
work, so the schedule cannot drift. A tick whose time has passed while the previous one was
still running is skipped, not run late: ticks never bunch up.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from report_worker.clock import Clock

OnTick = Callable[[int], Awaitable[None]]


def first_tick_at_or_after(now: float, interval: int) -> int:
    return math.ceil(now / interval)


def tick_time(tick: int, interval: int) -> float:
    return float(tick * interval)


def next_tick(previous: int, now: float, interval: int) -> int:
    """The tick after `previous`, skipping every tick whose time is already behind `now`."""
    return max(previous + 1, first_tick_at_or_after(now, interval))


async def run_schedule(clock: Clock, interval: int, on_tick: OnTick) -> None:
    """Call `on_tick(n)` at each tick time, forever (until cancelled or on_tick raises)."""
    tick = first_tick_at_or_after(clock.now(), interval)
    while True:
        await clock.sleep_until(tick_time(tick, interval))
        await on_tick(tick)
        tick = next_tick(tick, clock.now(), interval)
