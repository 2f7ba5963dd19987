"""A database outage costs one error line per tick, and the worker recovers by itself."""

from __future__ import annotations

import io
import logging
import time
from typing import Any

import pytest

from core.db import Database, create_database
from report_worker.settings import ReportWorkerSettings
from report_worker.worker import ReportWorker, TickOutcome


async def test_outage_logs_one_line_per_tick_and_recovers(
    db: Database, pg_proxy: Any, clock_at: Any, caplog: pytest.LogCaptureFixture
) -> None:
    proxy, url = pg_proxy
    settings = ReportWorkerSettings(
        database_url=url, report_interval_seconds=60, db_connect_timeout_seconds=2
    )
    worker_db = create_database(settings, application_name="report_worker_test")
    out = io.StringIO()
    # The lock's claim window is checked against the database clock: start at real time.
    clock = clock_at(time.time())
    worker = ReportWorker(db=worker_db, settings=settings, out=out, clock=clock)
    first = int(clock.now() // 60) + 1
    caplog.set_level(logging.INFO, logger="report_worker")
    try:
        assert await worker.run_tick(first) is TickOutcome.printed  # pools a connection

        await proxy.down()  # kills the pooled connection and refuses new ones
        caplog.clear()
        assert await worker.run_tick(first + 1) is TickOutcome.failed
        assert await worker.run_tick(first + 2) is TickOutcome.failed
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 2  # one line per failed tick, nothing else
        for record in errors:
            assert record.exc_info is None  # no traceback spam
            assert record.getMessage().startswith("report failed: ")
            assert "\n" not in record.getMessage()

        await proxy.up()  # same port: the database is back
        assert await worker.run_tick(first + 3) is TickOutcome.printed
    finally:
        await worker_db.dispose()
    assert out.getvalue().count("Pet directory report") == 2
    assert out.getvalue().count("End of report") == 2
