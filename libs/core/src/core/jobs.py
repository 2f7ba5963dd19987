"""The Job aggregate: every read and every state change of a generation job, in one place.

The gateway creates, reads, lists and cancels jobs here; the outbox relay claims the jobs
whose message is not on RabbitMQ yet; the generation worker moves a job through its attempts.
Each operation is ONE SQL statement (run in autocommit, so one round trip and atomic on its
own): a state change is a conditional `UPDATE ... WHERE status IN (...) RETURNING`, and its
audit event is inserted by the same statement, so two deliveries of one message can never both
win, and no change is ever recorded without its event or the other way round.

    queued -> running -> succeeded
       \\         \\-----> failed | canceled
        \\--------------> failed | canceled

A status change of a job with a caller webhook also records the webhook's delivery, in the same
statement, by a trigger on `jobs` (see core.webhook_deliveries): no statement here needs to.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Table, bindparam, column, select, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.sql.elements import BindParameter, TextClause
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Job, JobMedia
from core.pagination import Page, keyset_page
from core.schemas.generation import CancelReason, GenerateRequest, JobStatus, Priority

JOBS: Table = Job.__table__  # type: ignore[attr-defined]
MEDIA: Table = JobMedia.__table__  # type: ignore[attr-defined]

ERROR_MAX = 2000  # characters of an error kept on the job and its event
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class JobRow:
    """A job as stored (every column of `jobs`)."""

    id: uuid.UUID
    owner_id: uuid.UUID
    prompt: str
    model: str
    params: dict[str, Any]
    status: JobStatus
    attempts: int
    last_error: str | None
    prediction_id: str | None
    create_requested_at: datetime | None
    idempotency_key: str | None
    request_hash: str | None
    enqueued_at: datetime | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    priority: Priority
    deadline_at: datetime | None
    cancel_reason: CancelReason | None
    webhook: str | None
    webhook_events_filter: list[str] | None
    logs: str | None
    progress: float | None
    retries: int
    retired_prediction_ids: list[str]

    @property
    def prediction_input(self) -> dict[str, Any]:
        """What Replicate gets: the prompt and the stored params (seed included)."""
        return {"prompt": self.prompt, **self.params}


@dataclass(frozen=True, slots=True)
class MediaFile:
    index: int
    storage_key: str
    content_type: str
    size_bytes: int
    sha256: str
    source_url: str
    expired: bool = False  # deleted from storage after GATEWAY_MEDIA_TTL_SECONDS


def _statement(sql: str, *params: BindParameter[Any]) -> TextClause:
    """A statement with typed parameters (give `.columns(...)` for typed results: a job's
    status comes back as JobStatus, its params as a dict)."""
    return text(sql).bindparams(*params)


def _job(row: Any) -> JobRow:
    return JobRow(**{column.name: getattr(row, column.name) for column in JOBS.c})


_ID = bindparam("id", type_=UUID(as_uuid=True))
_OWNER = bindparam("owner_id", type_=UUID(as_uuid=True))
_JOB_COLUMNS = ", ".join(f"jobs.{column.name}" for column in JOBS.c)


# --- the gateway: create, read, list, cancel ------------------------------------------------


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before by this caller with a different request body."""


class JobNotCancelable(Exception):
    def __init__(self, status: JobStatus) -> None:
        super().__init__(status.value)
        self.status = status


@dataclass(frozen=True, slots=True)
class Accepted:
    job_id: uuid.UUID
    status: JobStatus
    created: bool  # False: an earlier job with the same Idempotency-Key

    @classmethod
    def of_new(cls, job: NewJob) -> Accepted:
        return cls(job.id, JobStatus.queued, created=True)


def request_hash(request: GenerateRequest, model: str) -> str:
    body: dict[str, Any] = {
        "prompt": request.prompt,
        "model": model,
        "params": request.params.model_dump(),
    }
    # Options only when given, so a key's hash stays what it was before they existed.
    options = request.model_dump(include={"priority", "webhook", "webhook_events_filter"})
    body.update({k: v for k, v in options.items() if v not in (None, Priority.normal)})
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def derived_seed(job_id: uuid.UUID) -> int:
    """A seed fixed per job: retries reproduce the same input, so a create whose answer was
    lost can be found again by its exact input, and no two jobs share one by accident."""
    return int.from_bytes(job_id.bytes[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job about to be stored: its id (so its seed) is chosen before the INSERT."""

    id: uuid.UUID
    owner_id: uuid.UUID
    prompt: str
    model: str
    params: dict[str, Any]
    idempotency_key: str | None
    request_hash: str
    priority: Priority = Priority.normal
    deadline_at: datetime | None = None
    webhook: str | None = None
    webhook_events_filter: list[str] | None = None


def new_job(
    *,
    owner_id: uuid.UUID,
    request: GenerateRequest,
    model: str,
    idempotency_key: str | None,
    deadline_at: datetime | None = None,
) -> NewJob:
    job_id = uuid.uuid4()
    params: dict[str, Any] = request.params.model_dump()
    if params.get("seed") is None:
        params["seed"] = derived_seed(job_id)
    return NewJob(
        id=job_id,
        owner_id=owner_id,
        prompt=request.prompt,
        model=model,
        params=params,
        idempotency_key=idempotency_key,
        request_hash=request_hash(request, model),
        priority=request.priority,
        deadline_at=deadline_at,
        webhook=request.webhook,
        webhook_events_filter=(
            None if request.webhook_events_filter is None else list(request.webhook_events_filter)
        ),
    )


# One statement for any number of new jobs (the gateway batches concurrent requests). Each row
# takes clock_timestamp(), so jobs stored together still list in the order they came.
_INSERT = _statement(
    """
    WITH job AS (
        INSERT INTO jobs (id, owner_id, prompt, model, params, status, attempts,
                          idempotency_key, request_hash, priority, deadline_at, webhook,
                          webhook_events_filter, created_at, updated_at)
        SELECT r.id, r.owner_id, r.prompt, r.model, r.params, 'queued', 0,
               r.idempotency_key, r.request_hash, coalesce(r.priority, 'normal'),
               r.deadline_at, r.webhook, r.webhook_events_filter,
               clock_timestamp(), clock_timestamp()
        FROM jsonb_to_recordset(:rows) AS r(
            id uuid, owner_id uuid, prompt text, model text, params jsonb,
            idempotency_key text, request_hash text, priority text, deadline_at timestamptz,
            webhook text, webhook_events_filter text[])
        ON CONFLICT ON CONSTRAINT uq_jobs_owner_idempotency_key DO NOTHING
        RETURNING id, created_at
    ), event AS (
        INSERT INTO job_events (job_id, kind, to_status, created_at)
        SELECT id, 'created', 'queued', created_at FROM job
    )
    SELECT id FROM job
    """,
    bindparam("rows", type_=JSONB),
)
_BY_IDEMPOTENCY_KEY = _statement(
    "SELECT id, status, request_hash FROM jobs"
    " WHERE owner_id = :owner_id AND idempotency_key = :idempotency_key",
    _OWNER,
).columns(JOBS.c.id, JOBS.c.status, JOBS.c.request_hash)


async def insert_many(session: AsyncSession, new_jobs: Sequence[NewJob]) -> list[bool]:
    """Store queued jobs and their `created` events in one statement; for each, whether it
    was stored (False: its owner already has a job with its Idempotency-Key).

    A job is not published here: its row is the outbox entry (`enqueued_at` NULL), and the
    gateway's relay publishes it after the commit (or, if that gateway dies first, any
    gateway's sweep: `claim_unpublished`), so a 202 never waits on the broker and a crash
    between the two loses nothing."""
    rows = [
        {
            "id": str(job.id),
            "owner_id": str(job.owner_id),
            "prompt": job.prompt,
            "model": job.model,
            "params": job.params,
            "idempotency_key": job.idempotency_key,
            "request_hash": job.request_hash,
            "priority": job.priority.value,
            "deadline_at": None if job.deadline_at is None else job.deadline_at.isoformat(),
            "webhook": job.webhook,
            "webhook_events_filter": job.webhook_events_filter,
        }
        for job in new_jobs
    ]
    stored = set((await session.execute(_INSERT, {"rows": rows})).scalars())
    return [job.id in stored for job in new_jobs]


async def replayed(session: AsyncSession, job: NewJob) -> Accepted:
    """The earlier job that `job`'s Idempotency-Key names (insert_many did not store `job`).
    Raises IdempotencyConflict if that job had another body."""
    existing = (
        await session.execute(
            _BY_IDEMPOTENCY_KEY,
            {"owner_id": job.owner_id, "idempotency_key": job.idempotency_key},
        )
    ).one()
    if existing.request_hash != job.request_hash:
        raise IdempotencyConflict
    return Accepted(existing.id, existing.status, created=False)


_GET = _statement(
    f"""
    SELECT {_JOB_COLUMNS}, coalesce(
        (SELECT jsonb_agg(jsonb_build_object(
                    'index', m.index, 'storage_key', m.storage_key,
                    'content_type', m.content_type, 'size_bytes', m.size_bytes,
                    'sha256', m.sha256, 'source_url', m.source_url,
                    'expired', m.expired_at IS NOT NULL) ORDER BY m.index)
         FROM job_media m WHERE m.job_id = jobs.id),
        '[]'::jsonb) AS media
    FROM jobs WHERE jobs.id = :id AND jobs.owner_id = :owner_id
    """,  # noqa: S608 - only column names are formatted in
    _ID,
    _OWNER,
).columns(*JOBS.c, column("media", JSONB))


async def get(
    session: AsyncSession, job_id: uuid.UUID, owner_id: uuid.UUID
) -> tuple[JobRow, list[MediaFile]] | None:
    """A caller's job with its stored files, in one round trip; None if it is not theirs."""
    row = (await session.execute(_GET, {"id": job_id, "owner_id": owner_id})).first()
    if row is None:
        return None
    return _job(row), [MediaFile(**m) for m in row.media]


async def list_page(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    status: JobStatus | None,
    limit: int,
    cursor: str | None,
) -> Page[JobRow]:
    """A caller's jobs, newest first. Raises core.pagination.InvalidCursor."""
    query = select(*JOBS.c).where(JOBS.c.owner_id == owner_id)
    if status is not None:
        query = query.where(JOBS.c.status == status)
    return await keyset_page(
        session,
        query,
        JOBS.c.created_at,
        JOBS.c.id,
        _job,
        limit=limit,
        cursor=cursor,
        newest_first=True,
    )


_MEDIA_FILE = _statement(
    """
    SELECT m.index, m.storage_key, m.content_type, m.size_bytes, m.sha256, m.source_url,
           m.expired_at IS NOT NULL AS expired
    FROM job_media m JOIN jobs ON jobs.id = m.job_id
    WHERE m.job_id = :id AND m.index = :index AND jobs.owner_id = :owner_id
    """,
    _ID,
    _OWNER,
)


async def media_file(
    session: AsyncSession, job_id: uuid.UUID, owner_id: uuid.UUID, index: int
) -> MediaFile | None:
    row = (
        await session.execute(_MEDIA_FILE, {"id": job_id, "owner_id": owner_id, "index": index})
    ).first()
    return None if row is None else MediaFile(**row._mapping)


_CANCEL = _statement(
    """
    WITH job AS (
        UPDATE jobs SET status = 'canceled', finished_at = now(), updated_at = now()
        WHERE id = :id AND owner_id = :owner_id AND status IN ('queued', 'running')
        RETURNING id
    ), event AS (
        INSERT INTO job_events (job_id, kind, to_status, detail)
        SELECT id, 'state', 'canceled', 'canceled by the caller' FROM job
    )
    SELECT id FROM job
    """,
    _ID,
    _OWNER,
)
_STATUS = _statement(
    "SELECT status FROM jobs WHERE id = :id AND owner_id = :owner_id", _ID, _OWNER
).columns(JOBS.c.status)


async def cancel(session: AsyncSession, job_id: uuid.UUID, owner_id: uuid.UUID) -> bool:
    """Cancel a queued or running job; False if the caller has no such job. Raises
    JobNotCancelable when it already finished. The worker notices on its next step and
    cancels the prediction at Replicate."""
    params = {"id": job_id, "owner_id": owner_id}
    if (await session.execute(_CANCEL, params)).first() is not None:
        return True
    status = (await session.execute(_STATUS, params)).scalar_one_or_none()
    if status is None:
        return False
    raise JobNotCancelable(status)


# --- the outbox relay -------------------------------------------------------------------------

_CLAIM_UNPUBLISHED = _statement(
    """
    SELECT id FROM jobs
    WHERE enqueued_at IS NULL AND status = 'queued'
      AND created_at < now() - make_interval(secs => :grace)
    ORDER BY created_at LIMIT :limit FOR UPDATE SKIP LOCKED
    """
)
_CLAIM_STALE = _statement(
    """
    SELECT id FROM jobs
    WHERE status IN ('queued', 'running') AND updated_at < now() - make_interval(secs => :stale)
    ORDER BY updated_at LIMIT :limit FOR UPDATE SKIP LOCKED
    """
)
_MARK_ENQUEUED = _statement(
    """
    WITH job AS (
        UPDATE jobs SET enqueued_at = now(), updated_at = now() WHERE id = ANY(:ids)
        RETURNING id
    ), event AS (
        INSERT INTO job_events (job_id, kind, detail) SELECT id, 'enqueued', :detail FROM job
    )
    SELECT count(*) FROM job
    """,
    bindparam("ids", type_=ARRAY(UUID(as_uuid=True))),
)


async def claim_unpublished(session: AsyncSession, grace: timedelta, limit: int) -> list[uuid.UUID]:
    """Lock (inside the caller's transaction) up to `limit` queued jobs whose message is still
    not confirmed `grace` after they were stored, oldest first; rows another relay holds are
    skipped, never waited for."""
    rows = await session.execute(
        _CLAIM_UNPUBLISHED, {"grace": grace.total_seconds(), "limit": limit}
    )
    return list(rows.scalars())


async def claim_stale(session: AsyncSession, stale_after: timedelta, limit: int) -> list[uuid.UUID]:
    """Lock queued or running jobs nobody has touched for `stale_after`: a message lost or
    dead-lettered with a broker. Sending them again is harmless (the worker resumes)."""
    rows = await session.execute(
        _CLAIM_STALE, {"stale": stale_after.total_seconds(), "limit": limit}
    )
    return list(rows.scalars())


async def mark_enqueued(session: AsyncSession, job_ids: Sequence[uuid.UUID], detail: str) -> None:
    """RabbitMQ confirmed the jobs' messages (restarts their stale clock too)."""
    await session.execute(_MARK_ENQUEUED, {"ids": list(job_ids), "detail": detail})


# --- the worker: one statement per transition ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attempt:
    job: JobRow
    number: int
    # When an earlier attempt may have created a prediction; None if none can have.
    create_requested_before: datetime | None


_BEGIN_ATTEMPT = _statement(
    f"""
    WITH earlier AS (
        SELECT id, create_requested_at FROM jobs
        WHERE id = :id AND status IN ('queued', 'running') FOR UPDATE
    ), job AS (
        UPDATE jobs SET
            attempts = jobs.attempts + 1,
            started_at = coalesce(jobs.started_at, now()),
            create_requested_at = CASE WHEN jobs.prediction_id IS NULL
                THEN coalesce(jobs.create_requested_at, now())
                ELSE jobs.create_requested_at END,
            updated_at = now()
        FROM earlier WHERE jobs.id = earlier.id
        RETURNING {_JOB_COLUMNS}, earlier.create_requested_at AS create_requested_before
    ), event AS (
        INSERT INTO job_events (job_id, kind, attempt) SELECT id, 'attempt', attempts FROM job
    )
    SELECT * FROM job
    """,  # noqa: S608 - only column names are formatted in
    _ID,
).columns(*JOBS.c, column("create_requested_before", DateTime(timezone=True)))


async def begin_attempt(session: AsyncSession, job_id: uuid.UUID) -> Attempt | None:
    """Count one more try of an unfinished job and return it; None if it is finished (or
    gone): nothing left to do. Marks that this attempt may create a prediction."""
    row = (await session.execute(_BEGIN_ATTEMPT, {"id": job_id})).first()
    if row is None:
        return None
    job = _job(row)
    return Attempt(job, job.attempts, row.create_requested_before)


_LOAD = _statement(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = :id", _ID).columns(*JOBS.c)  # noqa: S608


async def load(session: AsyncSession, job_id: uuid.UUID) -> JobRow | None:
    row = (await session.execute(_LOAD, {"id": job_id})).first()
    return None if row is None else _job(row)


_PREDICTION_CLAIMED = _statement(
    "SELECT EXISTS (SELECT 1 FROM jobs WHERE prediction_id = :prediction_id)"
)


async def prediction_claimed(session: AsyncSession, prediction_id: str) -> bool:
    result = await session.execute(_PREDICTION_CLAIMED, {"prediction_id": prediction_id})
    return bool(result.scalar_one())


_MARK_RUNNING = _statement(
    """
    WITH job AS (
        UPDATE jobs SET status = 'running', prediction_id = :prediction_id, updated_at = now()
        WHERE id = :id AND status = 'queued' AND prediction_id IS NULL
        RETURNING id
    ), event AS (
        INSERT INTO job_events (job_id, kind, from_status, to_status, detail)
        SELECT id, 'state', 'queued', 'running', :detail FROM job
    )
    SELECT id FROM job
    """,
    _ID,
)


async def mark_running(
    session: AsyncSession, job_id: uuid.UUID, prediction_id: str, how: str
) -> bool:
    """queued -> running with its prediction; False if the job was canceled meanwhile."""
    params = {
        "id": job_id,
        "prediction_id": prediction_id,
        "detail": f"prediction {prediction_id} ({how})",
    }
    return (await session.execute(_MARK_RUNNING, params)).first() is not None


_RECORD_ERROR = _statement(
    """
    WITH job AS (
        UPDATE jobs SET last_error = :error, updated_at = now()
        WHERE id = :id AND status IN ('queued', 'running')
        RETURNING id
    ), event AS (
        INSERT INTO job_events (job_id, kind, attempt, detail)
        SELECT id, 'error', :attempt, :error FROM job
    )
    SELECT id FROM job
    """,
    _ID,
)


async def record_error(session: AsyncSession, job_id: uuid.UUID, error: str, attempt: int) -> None:
    """A transient failure of this attempt (the job stays unfinished; another attempt
    follows)."""
    await session.execute(
        _RECORD_ERROR, {"id": job_id, "error": error[:ERROR_MAX], "attempt": attempt}
    )


_TOUCH = _statement(
    """
    UPDATE jobs SET updated_at = now()
    WHERE id = :id AND status = 'running' AND updated_at < now() - make_interval(secs => :every)
    """,
    _ID,
)


async def touch(session: AsyncSession, job_id: uuid.UUID) -> None:
    """Show the stale-job scan that a long prediction is still watched (once a minute at most,
    so a poll writes nothing most of the time)."""
    await session.execute(_TOUCH, {"id": job_id, "every": TOUCH_EVERY.total_seconds()})


_MARK_FAILED = _statement(
    """
    WITH job AS (
        UPDATE jobs SET status = 'failed', last_error = :reason, finished_at = now(),
                        updated_at = now()
        WHERE id = :id AND status IN ('queued', 'running')
        RETURNING id
    ), event AS (
        INSERT INTO job_events (job_id, kind, to_status, detail)
        SELECT id, 'state', 'failed', :reason FROM job
    )
    SELECT id FROM job
    """,
    _ID,
)


async def mark_failed(session: AsyncSession, job_id: uuid.UUID, reason: str) -> bool:
    """-> failed, for good; False if the job had finished already."""
    params = {"id": job_id, "reason": reason[:ERROR_MAX]}
    return (await session.execute(_MARK_FAILED, params)).first() is not None


_MARK_SUCCEEDED = _statement(
    """
    WITH job AS (
        UPDATE jobs SET status = 'succeeded', finished_at = now(), last_error = NULL,
                        updated_at = now()
        WHERE id = :id AND status = 'running'
        RETURNING id
    ), media AS (
        INSERT INTO job_media (id, job_id, index, storage_key, content_type, size_bytes,
                               sha256, source_url, created_at)
        SELECT gen_random_uuid(), job.id, m.index, m.storage_key, m.content_type,
               m.size_bytes, m.sha256, m.source_url, now()
        FROM job, jsonb_to_recordset(:media) AS m(
            index int, storage_key text, content_type text, size_bytes bigint, sha256 text,
            source_url text)
        ON CONFLICT ON CONSTRAINT uq_job_media_job_id_index DO NOTHING
    ), event AS (
        INSERT INTO job_events (job_id, kind, from_status, to_status, detail)
        SELECT id, 'state', 'running', 'succeeded', :detail FROM job
    )
    SELECT id FROM job
    """,
    _ID,
    bindparam("media", type_=JSONB),
)


async def mark_succeeded(
    session: AsyncSession, job_id: uuid.UUID, media: Sequence[MediaFile]
) -> bool:
    """running -> succeeded with its stored files, all or nothing; False if the job was
    canceled or finished meanwhile (then nothing is written)."""
    params = {
        "id": job_id,
        "media": [
            {
                "index": m.index,
                "storage_key": m.storage_key,
                "content_type": m.content_type,
                "size_bytes": m.size_bytes,
                "sha256": m.sha256,
                "source_url": m.source_url,
            }
            for m in media
        ],
        "detail": f"{len(media)} file(s) stored",
    }
    return (await session.execute(_MARK_SUCCEEDED, params)).first() is not None
