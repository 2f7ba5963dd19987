"""`python -m report_worker [--once]`: print the pet report every interval, or once."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from core.db import create_database
from core.logging import configure_logging, load_settings
from core.metrics import serve_metrics
from report_worker.clock import SystemClock
from report_worker.settings import ReportWorkerSettings
from report_worker.worker import ReportWorker

logger = logging.getLogger("report_worker")


async def run(settings: ReportWorkerSettings, *, once: bool) -> int:
    db = create_database(settings, application_name="report_worker")
    worker = ReportWorker(db=db, settings=settings, out=sys.stdout, clock=SystemClock())

    async def work() -> int:
        if once:
            return 0 if await worker.run_once() else 1
        await worker.run_forever()
        return 0  # unreachable: run_forever only ends by cancellation

    task = asyncio.create_task(work())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise  # we were cancelled from outside, not by a signal
        logger.info("report worker stopped")
        return 0
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await db.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m report_worker", description=__doc__)
    parser.add_argument("--once", action="store_true", help="print one report now and exit")
    args = parser.parse_args(argv)
    settings = load_settings("report_worker", ReportWorkerSettings)
    configure_logging("report_worker", settings.log_level)
    if not args.once:
        serve_metrics(settings.report_metrics_port, service="report_worker")
    return asyncio.run(run(settings, once=args.once))


if __name__ == "__main__":
    raise SystemExit(main())
