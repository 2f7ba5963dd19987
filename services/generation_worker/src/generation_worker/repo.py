"""Job state changes for the worker. Each is one conditional UPDATE (`... WHERE status = ...`)
plus its audit event, in one transaction, so two deliveries of a message cannot both win."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select

from core.db import Database
from core.models import Job, JobEvent, JobMedia, JobStatus

UNFINISHED = (JobStatus.queued.value, JobStatus.running.value)
ERROR_MAX = 2000
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class MediaRow:
    index: int
    storage_key: str
    content_type: str
    size_bytes: int
    sha256: str
    source_url: str


class JobRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def load(self, job_id: uuid.UUID) -> Job | None:
        async with self.db.session() as session:
            return await session.get(Job, job_id)

    async def _update(
        self,
        job_id: uuid.UUID,
        *,
        where: Any,
        values: dict[str, Any],
        event: JobEvent | None,
        returning: Any = None,
    ) -> Any:
        """Apply one conditional UPDATE and its event; return the RETURNING value or None."""
        async with self.db.session() as session:
            stmt = update(Job).where(col(Job.id) == job_id, where).values(**values)
            result = await session.execute(
                stmt.returning(returning if returning is not None else col(Job.id))
            )
            row = result.first()
            if row is None:
                await session.rollback()
                return None
            if event is not None:
                if event.attempt is None and "attempts" in values:
                    event.attempt = row[0]
                session.add(event)
            await session.commit()
            return row[0]

    async def begin_attempt(self, job_id: uuid.UUID) -> int | None:
        """Count one more try; None if the job is finished (nothing to do)."""
        attempt: int | None = await self._update(
            job_id,
            where=col(Job.status).in_(UNFINISHED),
            values={
                "attempts": Job.attempts + 1,
                "started_at": func.coalesce(Job.started_at, func.now()),
            },
            event=JobEvent(job_id=job_id, kind="attempt"),
            returning=col(Job.attempts),
        )
        return attempt

    async def prediction_claimed(self, prediction_id: str) -> bool:
        async with self.db.session() as session:
            found = await session.exec(select(Job.id).where(Job.prediction_id == prediction_id))
            return found.first() is not None

    async def note_create_requested(self, job_id: uuid.UUID) -> bool:
        return (
            await self._update(
                job_id,
                where=(col(Job.status) == JobStatus.queued.value)
                & col(Job.prediction_id).is_(None),
                values={"create_requested_at": func.now()},
                event=None,
            )
            is not None
        )

    async def mark_running(self, job_id: uuid.UUID, prediction_id: str, how: str) -> bool:
        return (
            await self._update(
                job_id,
                where=(col(Job.status) == JobStatus.queued.value)
                & col(Job.prediction_id).is_(None),
                values={"status": JobStatus.running.value, "prediction_id": prediction_id},
                event=JobEvent(
                    job_id=job_id,
                    kind="state",
                    from_status=JobStatus.queued.value,
                    to_status=JobStatus.running.value,
                    detail=f"prediction {prediction_id} ({how})",
                ),
            )
            is not None
        )

    async def record_error(self, job_id: uuid.UUID, error: str, attempt: int) -> None:
        await self._update(
            job_id,
            where=col(Job.status).in_(UNFINISHED),
            values={"last_error": error[:ERROR_MAX]},
            event=JobEvent(job_id=job_id, kind="error", attempt=attempt, detail=error[:ERROR_MAX]),
        )

    async def touch(self, job_id: uuid.UUID) -> None:
        """Show the sweeper a long prediction is still being watched (at most once a minute)."""
        async with self.db.session() as session:
            await session.execute(
                update(Job)
                .where(
                    col(Job.id) == job_id,
                    col(Job.status) == JobStatus.running.value,
                    col(Job.updated_at) < func.now() - TOUCH_EVERY,
                )
                .values(updated_at=func.now())
            )
            await session.commit()

    async def mark_failed(self, job_id: uuid.UUID, reason: str) -> bool:
        return (
            await self._update(
                job_id,
                where=col(Job.status).in_(UNFINISHED),
                values={
                    "status": JobStatus.failed.value,
                    "last_error": reason[:ERROR_MAX],
                    "finished_at": func.now(),
                },
                event=JobEvent(
                    job_id=job_id,
                    kind="state",
                    to_status=JobStatus.failed.value,
                    detail=reason[:ERROR_MAX],
                ),
            )
            is not None
        )

    async def mark_succeeded(self, job_id: uuid.UUID, media: list[MediaRow]) -> bool:
        """Store the media rows and finish the job in one transaction; False if it was
        canceled or finished meanwhile (then nothing is written)."""
        async with self.db.session() as session:
            result = await session.execute(
                update(Job)
                .where(col(Job.id) == job_id, col(Job.status) == JobStatus.running.value)
                .values(status=JobStatus.succeeded.value, finished_at=func.now(), last_error=None)
                .returning(col(Job.status))
            )
            if result.first() is None:
                await session.rollback()
                return False
            rows = [
                {
                    "id": uuid.uuid4(),
                    "job_id": job_id,
                    "index": m.index,
                    "storage_key": m.storage_key,
                    "content_type": m.content_type,
                    "size_bytes": m.size_bytes,
                    "sha256": m.sha256,
                    "source_url": m.source_url,
                }
                for m in media
            ]
            if rows:
                await session.execute(
                    insert(JobMedia)
                    .values(rows)
                    .on_conflict_do_nothing(constraint="uq_job_media_job_id_index")
                )
            session.add(
                JobEvent(
                    job_id=job_id,
                    kind="state",
                    from_status=JobStatus.running.value,
                    to_status=JobStatus.succeeded.value,
                    detail=f"{len(rows)} file(s) stored",
                )
            )
            await session.commit()
            return True
