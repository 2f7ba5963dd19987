"""One report per tick, printed by exactly one replica.

How replicas agree, without a table: each tick's report runs in one REPEATABLE READ, READ ONLY
transaction that first takes `pg_try_advisory_xact_lock(REPORT_LOCK_KEY, tick)`.

- A replica prints tick n only if it gets the lock *and* the database clock says it is still
  in the first half of the tick's interval (the claim window).
- The winner keeps its transaction, and so the lock, open at least until the claim window has
  closed, even when the report took less time.

So any other replica either finds the lock held (skip) or gets it after the window closed
(too late: skip). A replica that wakes up late, after the winner finished, cannot print the tick
a second time. Both checks use the database clock, so replicas' clock skew does not matter as
long as it is below half an interval (it would make a replica skip, never double-print).

The cost: the snapshot stays open for half an interval (30 s by default), which is harmless for
a read-only transaction of this size. If the winner dies mid-report the lock is freed and a
replica still inside the window may print the tick in full; the dead one's partial output ends
with an "incomplete" line. The alternative, a `report_ticks` row claimed with INSERT ... ON
CONFLICT DO NOTHING, needs no timing rule but a table and a write per tick; this design needs
neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from typing import TextIO

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db import Database
from report_worker import metrics
from report_worker.clock import Clock
from report_worker.errors import TRANSIENT_ERRORS, describe
from report_worker.output import BatchedWriter
from report_worker.query import count_pets, snapshot, stream_pet_pages
from report_worker.render import render_report
from report_worker.schedule import run_schedule, tick_time
from report_worker.settings import ReportWorkerSettings

logger = logging.getLogger("report_worker")

INCOMPLETE = "!! Report incomplete ({reason}); the next report starts over.\n"

_CLAIM = text(
    "SELECT pg_try_advisory_xact_lock(:key, :tick) AS claimed,"
    " EXTRACT(EPOCH FROM clock_timestamp())::float8 AS db_now"
)


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while inside.

    A report allocates about ten container objects per pet, all freed by reference counting;
    the collector, triggered every 700 allocations, would walk each page (and every object
    imported at start-up) several times over for nothing: 40-50 % of a report's CPU time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class TickOutcome(StrEnum):
    printed = "printed"
    skipped = "skipped"  # another replica has it, or this one came too late
    failed = "failed"


class ReportWorker:
    def __init__(
        self, *, db: Database, settings: ReportWorkerSettings, out: TextIO, clock: Clock
    ) -> None:
        self._db = db
        self._settings = settings
        self._out = out
        self._clock = clock
        self._interval = settings.report_interval_seconds

    async def run_forever(self) -> None:
        logger.info("report worker started", extra={"interval_seconds": self._interval})
        await run_schedule(self._clock, self._interval, self._on_tick)

    async def _on_tick(self, tick: int) -> None:
        await self.run_tick(tick)

    async def run_once(self) -> bool:
        """Print one report now, unconditionally (no election). False if it failed."""
        generated_at = datetime.fromtimestamp(self._clock.now(), UTC)
        try:
            async with snapshot(self._db.engine) as conn:
                total = await self._print(conn, generated_at)
        except TRANSIENT_ERRORS as exc:
            logger.error("report failed: %s", describe(exc))
            return False
        logger.info("report printed", extra={"pets": total})
        return True

    async def run_tick(self, tick: int) -> TickOutcome:
        outcome = await self._run_tick(tick)
        if outcome is not TickOutcome.printed:  # printed ones are counted as they finish
            metrics.TICKS.labels(outcome.value).inc()
        return outcome

    async def _run_tick(self, tick: int) -> TickOutcome:
        started = time.perf_counter()
        tick_at = tick_time(tick, self._interval)
        window_end = tick_at + self._interval / 2
        context = {"tick_at": datetime.fromtimestamp(tick_at, UTC).isoformat()}
        try:
            async with snapshot(self._db.engine) as conn:
                key = {"key": self._settings.report_lock_key, "tick": tick % 2**31}
                claimed, db_now = (await conn.execute(_CLAIM, key)).one()
                if not claimed or db_now >= window_end:
                    logger.debug("tick left to another replica", extra=context)
                    return TickOutcome.skipped
                hold_until = self._clock.now() + (window_end - db_now)
                total = await self._print(conn, datetime.fromtimestamp(tick_at, UTC))
                seconds = time.perf_counter() - started
                metrics.printed(total, seconds)
                logger.info(
                    "report printed", extra={**context, "pets": total, "ms": round(seconds * 1000)}
                )
                await self._clock.sleep_until(hold_until)  # see the module docstring
        except TRANSIENT_ERRORS as exc:
            logger.error("report failed: %s", describe(exc), extra=context)
            return TickOutcome.failed
        except Exception:
            # A bug, not an outage: keep the traceback, and keep the schedule going.
            logger.exception("report crashed", extra=context)
            return TickOutcome.failed
        return TickOutcome.printed

    async def _print(self, conn: AsyncConnection, generated_at: datetime) -> int:
        counts = await count_pets(conn)
        writer = BatchedWriter(self._out)
        try:
            pages = stream_pet_pages(conn, self._settings.report_page_size)
            with _no_cyclic_gc():
                async with contextlib.aclosing(pages):
                    report = render_report(generated_at=generated_at, counts=counts, pages=pages)
                    async for chunk in report:
                        await writer.write(chunk)
        except (Exception, asyncio.CancelledError) as exc:
            # Whatever was printed must not pass for a whole report.
            reason = "stopped" if isinstance(exc, asyncio.CancelledError) else describe(exc)
            await writer.write(INCOMPLETE.format(reason=reason))
            await writer.flush()
            raise
        await writer.flush()
        return counts.total
