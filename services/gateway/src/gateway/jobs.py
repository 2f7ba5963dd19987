"""Job persistence for the gateway: create (idempotently), read, list and cancel a caller's jobs."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Job, JobEvent, JobMedia, JobStatus
from core.schemas.generation import GenerateRequest


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before by this caller with a different request body."""


class JobNotCancelable(Exception):
    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


def request_hash(request: GenerateRequest, model: str) -> str:
    body = {"prompt": request.prompt, "model": model, "params": request.params.model_dump()}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def derived_seed(job_id: uuid.UUID) -> int:
    """A seed fixed per job: retries reproduce the same input, so a create whose answer was
    lost can be found again by its exact input."""
    return int.from_bytes(job_id.bytes[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True, slots=True)
class Accepted:
    job_id: uuid.UUID
    status: JobStatus
    created: bool  # False: an earlier job with the same Idempotency-Key


async def create_job(
    *,
    session: AsyncSession,
    owner_id: uuid.UUID,
    request: GenerateRequest,
    model: str,
    idempotency_key: str | None,
) -> Accepted:
    """Insert a queued job, or return the one this caller made with the same key.

    Raises IdempotencyConflict if the key was used for another body.
    """
    job_id = uuid.uuid4()
    params: dict[str, Any] = request.params.model_dump()
    if params.get("seed") is None:
        params["seed"] = derived_seed(job_id)
    fingerprint = request_hash(request, model)
    stmt = (
        insert(Job)
        .values(
            id=job_id,
            owner_id=owner_id,
            prompt=request.prompt,
            model=model,
            params=params,
            status=JobStatus.queued.value,
            attempts=0,
            idempotency_key=idempotency_key,
            request_hash=fingerprint,
        )
        .on_conflict_do_nothing(constraint="uq_jobs_owner_idempotency_key")
        .returning(col(Job.id))
    )
    inserted = (await session.execute(stmt)).scalar_one_or_none()
    if inserted is None:
        await session.rollback()
        existing = (
            await session.exec(
                select(Job).where(Job.owner_id == owner_id, Job.idempotency_key == idempotency_key)
            )
        ).one()
        if existing.request_hash != fingerprint:
            raise IdempotencyConflict
        return Accepted(existing.id, JobStatus(existing.status), created=False)
    session.add(JobEvent(job_id=job_id, kind="created", to_status=JobStatus.queued.value))
    await session.commit()
    return Accepted(job_id, JobStatus.queued, created=True)


async def mark_enqueued(*, session: AsyncSession, job_ids: list[uuid.UUID], detail: str) -> None:
    """Record that RabbitMQ confirmed the jobs' messages (the sweeper skips them)."""
    await session.execute(
        update(Job).where(col(Job.id).in_(job_ids)).values(enqueued_at=func.now())
    )
    session.add_all(JobEvent(job_id=job_id, kind="enqueued", detail=detail) for job_id in job_ids)
    await session.commit()


async def get_job(
    *, session: AsyncSession, job_id: uuid.UUID, owner_id: uuid.UUID
) -> tuple[Job, list[JobMedia]] | None:
    job = (
        await session.exec(select(Job).where(Job.id == job_id, Job.owner_id == owner_id))
    ).first()
    if job is None:
        return None
    media = (
        await session.exec(
            select(JobMedia).where(JobMedia.job_id == job_id).order_by(col(JobMedia.index))
        )
    ).all()
    return job, list(media)


async def list_jobs(
    *,
    session: AsyncSession,
    owner_id: uuid.UUID,
    status: JobStatus | None,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> list[Job]:
    """Newest first, keyset-paginated on (created_at, id)."""
    query = select(Job).where(Job.owner_id == owner_id)
    if status is not None:
        query = query.where(Job.status == status.value)
    if after is not None:
        created_at, job_id = after
        query = query.where(
            or_(
                col(Job.created_at) < created_at,
                and_(col(Job.created_at) == created_at, col(Job.id) < job_id),
            )
        )
    query = query.order_by(col(Job.created_at).desc(), col(Job.id).desc()).limit(limit)
    return list((await session.exec(query)).all())


async def cancel_job(*, session: AsyncSession, job_id: uuid.UUID, owner_id: uuid.UUID) -> bool:
    """Cancel a queued or running job. False if it does not exist for this owner.

    Raises JobNotCancelable when it already finished. The worker notices the canceled status
    on its next step and cancels the prediction at Replicate."""
    result = await session.execute(
        update(Job)
        .where(
            col(Job.id) == job_id,
            col(Job.owner_id) == owner_id,
            col(Job.status).in_([JobStatus.queued.value, JobStatus.running.value]),
        )
        .values(status=JobStatus.canceled.value, finished_at=func.now(), updated_at=func.now())
        .returning(col(Job.status))
    )
    if result.first() is not None:
        session.add(
            JobEvent(
                job_id=job_id,
                kind="state",
                to_status=JobStatus.canceled.value,
                detail="canceled by the caller",
            )
        )
        await session.commit()
        return True
    await session.rollback()
    found = await get_job(session=session, job_id=job_id, owner_id=owner_id)
    if found is None:
        return False
    raise JobNotCancelable(found[0].status)
