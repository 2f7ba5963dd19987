"""Per-process resources, created on the event loop that uses them and closed on it."""

from __future__ import annotations

from dataclasses import dataclass

from core.db import Database, create_database
from core.messaging import Publisher
from core.replicate import ReplicateClient
from core.storage import MediaStorage, create_storage
from generation_worker.repo import JobRepository
from generation_worker.settings import WorkerSettings


@dataclass
class WorkerContext:
    settings: WorkerSettings
    db: Database
    jobs: JobRepository
    replicate: ReplicateClient
    storage: MediaStorage
    publisher: Publisher | None  # None when steps run outside a dramatiq worker (tests)
    storage_ready: bool = False

    async def ready_storage(self) -> MediaStorage:
        """Create the bucket on first use, not at start-up: a storage outage must reach the
        job as a retryable error, not stop the worker from taking messages."""
        if not self.storage_ready:
            await self.storage.ensure_ready()
            self.storage_ready = True
        return self.storage

    @classmethod
    async def open(cls, settings: WorkerSettings, publisher: Publisher | None) -> WorkerContext:
        db = create_database(settings, application_name="generation_worker")
        storage = create_storage(settings)
        return cls(
            settings=settings,
            db=db,
            jobs=JobRepository(db),
            replicate=ReplicateClient.from_settings(settings),
            storage=storage,
            publisher=publisher,
        )

    async def aclose(self) -> None:
        await self.replicate.aclose()
        await self.storage.close()
        await self.db.dispose()
        if self.publisher is not None:
            await self.publisher.aclose()
