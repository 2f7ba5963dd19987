"""The worker's per-process resources, opened on Dramatiq's event loop and closed on it (an
asyncpg pool or an aiohttp session belongs to the loop that opened it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database, create_database
from core.replicate import ReplicateClient
from core.storage import MediaStorage, create_storage
from generation_worker.settings import WorkerSettings

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

    async def context(self) -> WorkerContext:
        if self._context is None:  # the loop runs one coroutine at a time: no race
            self._context = WorkerContext.open(self.settings)
        return self._context

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        context, self._context = self._context, None
        loop_thread = get_event_loop_thread()
        if context is not None and loop_thread is not None:
            loop_thread.run_coroutine(context.aclose())
