"""One printer per tick: the advisory lock plus the claim window (see report_worker.worker)."""

from __future__ import annotations

import asyncio
import io
import math
import time

from core.db import Database
from report_worker.clock import SystemClock
from report_worker.settings import ReportWorkerSettings
from report_worker.worker import ReportWorker, TickOutcome


def replica(db: Database) -> tuple[ReportWorker, io.StringIO]:
    settings = ReportWorkerSettings(database_url="unused://", report_interval_seconds=1)
    out = io.StringIO()
    return ReportWorker(db=db, settings=settings, out=out, clock=SystemClock()), out


async def test_concurrent_replicas_print_a_tick_once(db: Database) -> None:
    (a, out_a), (b, out_b) = replica(db), replica(db)
    tick = math.ceil(time.time())
    outcomes = await asyncio.gather(a.run_tick(tick), b.run_tick(tick))
    assert sorted(outcomes) == sorted([TickOutcome.printed, TickOutcome.skipped])
    assert (out_a.getvalue() + out_b.getvalue()).count("Pet directory report") == 1


async def test_a_replica_arriving_after_the_winner_finished_does_not_print_again(
    db: Database,
) -> None:
    (a, out_a), (b, out_b) = replica(db), replica(db)
    tick = math.ceil(time.time())  # starts within the next second
    assert await a.run_tick(tick) is TickOutcome.printed  # returns once its window closed
    assert await b.run_tick(tick) is TickOutcome.skipped  # the lock is free, but too late
    assert out_a.getvalue().count("Pet directory report") == 1
    assert out_b.getvalue() == ""
