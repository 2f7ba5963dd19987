"""The worker's per-process resources, opened on Dramatiq's event loop and closed on it (an
asyncpg pool or an aiohttp session belongs to the loop that opened it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware
from sqlmodel.ext.asyncio.session import AsyncSession

from core import jobs
from core.db import Database, create_database
from core.replicate import ReplicateClient
from core.storage import MediaStorage, create_storage
from generation_worker import metrics
from generation_worker.settings import WorkerSettings

log = logging.getLogger(__name__)

GAUGE_REFRESH_SECONDS = 15

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class WorkerContext:
    """What a step needs: settings, the database, Replicate and media storage."""

    settings: WorkerSettings
    db: Database
    replicate: ReplicateClient
    storage: MediaStorage
    _storage_ready: bool = field(default=False, repr=False)

    @classmethod
    def open(cls, settings: WorkerSettings) -> WorkerContext:
        """Nothing connects here: every client connects on first use, on the running loop."""
        return cls(
            settings=settings,
            db=create_database(settings, application_name="generation_worker"),
            replicate=ReplicateClient.from_settings(settings),
            storage=create_storage(settings),
        )

    async def jobs(
        self,
        operation: Callable[Concatenate[AsyncSession, P], Awaitable[R]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        """Run one core.jobs operation on a pooled connection, returned right after: a step
        never holds a connection while it waits on Replicate or storage."""
        async with self.db.session() as session:
            return await operation(session, *args, **kwargs)

    async def ready_storage(self) -> MediaStorage:
        """Create the bucket on first use, not at start-up: a storage outage must reach the
        job as a retryable error, not stop the worker from taking messages."""
        if not self._storage_ready:
            await self.storage.ensure_ready()
            self._storage_ready = True
        return self.storage

    async def aclose(self) -> None:
        await self.replicate.aclose()
        await self.storage.close()
        await self.db.dispose()


class WorkerResources(Middleware):
    """Opens the WorkerContext on first use (on the event loop) and closes it after the
    worker threads stopped. Add it after AsyncIO: Dramatiq calls `after_*` hooks last to first,
    so its shutdown hook runs while AsyncIO's loop is still alive."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._context: WorkerContext | None = None
        self._gauges: asyncio.Task[None] | None = None

    async def context(self) -> WorkerContext:
        if self._context is None:  # the loop runs one coroutine at a time: no race
            self._context = WorkerContext.open(self.settings)
            self._gauges = asyncio.create_task(_refresh_job_gauges(self._context))
        return self._context

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        loop_thread = get_event_loop_thread()
        if loop_thread is not None:
            loop_thread.run_coroutine(self._close())

    async def _close(self) -> None:
        context, self._context = self._context, None
        gauges, self._gauges = self._gauges, None
        if gauges is not None:
            gauges.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gauges
        if context is not None:
            await context.aclose()


async def _refresh_job_gauges(ctx: WorkerContext) -> None:
    """Queued and running jobs (predictions in flight) into `generation_jobs`, every 15 s; a
    database outage leaves the last values and tries again next time."""
    while True:
        try:
            counts = await ctx.jobs(jobs.count_unfinished)
        except Exception as exc:  # the database away: the steps report that loudly enough
            log.debug("job gauges not refreshed: %s", exc)
        else:
            for status, n in counts.items():
                metrics.JOBS.labels(status.value).set(n)
        await asyncio.sleep(GAUGE_REFRESH_SECONDS)
