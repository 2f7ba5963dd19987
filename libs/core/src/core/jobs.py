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
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    Table,
    bindparam,
    column,
    literal_column,
    select,
    text,
)
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
    trace_parent: str | None

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
    trace_parent: str | None = None  # core.tracing: the request's context, if traced


def new_job(
    *,
    owner_id: uuid.UUID,
    request: GenerateRequest,
    model: str,
    idempotency_key: str | None,
    deadline_at: datetime | None = None,
    trace_parent: str | None = None,
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
        trace_parent=trace_parent,
    )


# One statement for any number of new jobs (the gateway batches concurrent requests). Each row
# takes clock_timestamp(), so jobs stored together still list in the order they came.
_INSERT = _statement(
    """
    WITH r AS (
        SELECT * FROM ROWS FROM (jsonb_to_recordset(:rows) AS (
            id uuid, owner_id uuid, prompt text, model text, params jsonb,
            idempotency_key text, request_hash text, priority text, deadline_at timestamptz,
            webhook text, webhook_events_filter text[], trace_parent text))
        WITH ORDINALITY AS r(id, owner_id, prompt, model, params, idempotency_key,
            request_hash, priority, deadline_at, webhook, webhook_events_filter, trace_parent,
            ord)
    ), wanted AS (
        SELECT owner_id, count(*) AS n FROM r GROUP BY owner_id
    ), window_count AS (
        -- The caller's creates this minute, these included (core.rate_limits explains the
        -- window); owners in order, so two gateways lock them in the same order.
        INSERT INTO rate_windows AS w (owner_id, window_start, count)
        SELECT owner_id, date_trunc('minute', now()), n FROM wanted
        WHERE :rate_limit > 0 ORDER BY owner_id
        ON CONFLICT (owner_id, window_start) DO UPDATE SET count = w.count + excluded.count
        RETURNING owner_id, count
    ), ranked AS (
        SELECT r.*, row_number() OVER (PARTITION BY r.owner_id ORDER BY r.ord) AS nth FROM r
    ), allowed AS (
        -- Each job as if the batch's jobs had come one after another.
        SELECT ranked.* FROM ranked
        LEFT JOIN wanted USING (owner_id) LEFT JOIN window_count USING (owner_id)
        WHERE :rate_limit = 0 OR window_count.count - wanted.n + ranked.nth <= :rate_limit
    ), job AS (
        INSERT INTO jobs (id, owner_id, prompt, model, params, status, attempts,
                          idempotency_key, request_hash, priority, deadline_at, webhook,
                          webhook_events_filter, trace_parent, created_at, updated_at)
        SELECT a.id, a.owner_id, a.prompt, a.model, a.params, 'queued', 0,
               a.idempotency_key, a.request_hash, coalesce(a.priority, 'normal'),
               a.deadline_at, a.webhook, a.webhook_events_filter, a.trace_parent,
               clock_timestamp(), clock_timestamp()
        FROM allowed a ORDER BY a.ord
        ON CONFLICT ON CONSTRAINT uq_jobs_owner_idempotency_key DO NOTHING
        RETURNING id, created_at
    ), event AS (
        INSERT INTO job_events (job_id, kind, to_status, created_at)
        SELECT id, 'created', 'queued', created_at FROM job
    )
    SELECT r.id, job.id IS NOT NULL AS stored, allowed.id IS NULL AS limited,
           extract(epoch FROM date_trunc('minute', now()) + interval '1 minute' - now())
               AS resets_in
    FROM r LEFT JOIN job USING (id) LEFT JOIN allowed USING (id)
    """,
    bindparam("rows", type_=JSONB),
)
_BY_IDEMPOTENCY_KEY = _statement(
    "SELECT id, status, request_hash FROM jobs"
    " WHERE owner_id = :owner_id AND idempotency_key = :idempotency_key",
    _OWNER,
).columns(JOBS.c.id, JOBS.c.status, JOBS.c.request_hash)


@dataclass(frozen=True, slots=True)
class Admission:
    """What became of one new job: stored; not stored because its owner already has a job
    with its Idempotency-Key; or refused by the rate limit (then `resets_in_seconds` says
    when the owner's window ends)."""

    stored: bool
    limited: bool = False
    resets_in_seconds: float = 0.0


async def admit_many(
    session: AsyncSession, new_jobs: Sequence[NewJob], *, rate_limit: int = 0
) -> list[Admission]:
    """Count the new jobs against their owners' rate limit (creates per minute; 0: none) and
    store those within it, with their `created` events, in ONE statement: the gateway's
    check and insert cost one round trip, and the count is shared by every replica.

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
            "trace_parent": job.trace_parent,
        }
        for job in new_jobs
    ]
    result = await session.execute(_INSERT, {"rows": rows, "rate_limit": rate_limit})
    outcome = {
        job_id: Admission(stored, limited, float(resets_in))
        for job_id, stored, limited, resets_in in result
    }
    return [outcome[job.id] for job in new_jobs]


async def insert_many(session: AsyncSession, new_jobs: Sequence[NewJob]) -> list[bool]:
    """Store queued jobs (no rate limit); for each, whether it was stored (False: its owner
    already has a job with its Idempotency-Key)."""
    return [admitted.stored for admitted in await admit_many(session, new_jobs)]


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


# The queued jobs the workers take before a queued job: higher priorities first, then the same
# priority by age (ix_jobs_queued_priority_created_at answers both counts). Approximate: a
# worker holds a few messages ahead of their turn, and a queued job waiting for a retry counts.
_HIGHER_PRIORITIES = " ".join(
    f"WHEN '{p.value}' THEN ARRAY[{', '.join(repr(q.value) for q in Priority if q.amqp > p.amqp)}]"
    f"::text[]"
    for p in Priority
)
_QUEUE_POSITION = f"""
    CASE WHEN jobs.status = 'queued' THEN (
        SELECT count(*) FROM jobs ahead
        WHERE ahead.status = 'queued'
          AND ahead.priority = ANY(CASE jobs.priority {_HIGHER_PRIORITIES} END)
    ) + (
        SELECT count(*) FROM jobs ahead
        WHERE ahead.status = 'queued'
          AND ahead.priority = jobs.priority AND ahead.created_at < jobs.created_at
    ) END"""  # noqa: S608 - constants only
# A job's stored files as a JSON array of MediaFile fields (job_media's primary key answers it).
_MEDIA_JSON = """
    coalesce(
        (SELECT jsonb_agg(jsonb_build_object(
                    'index', m.index, 'storage_key', m.storage_key,
                    'content_type', m.content_type, 'size_bytes', m.size_bytes,
                    'sha256', m.sha256, 'source_url', m.source_url,
                    'expired', m.expired_at IS NOT NULL) ORDER BY m.index)
         FROM job_media m WHERE m.job_id = jobs.id),
        '[]'::jsonb)"""
# What GET /status shows of a job: its columns, its files and its place in the queue.
_VIEW_COLUMNS = f"""
    {_JOB_COLUMNS},
    {_MEDIA_JSON} AS media,
    {_QUEUE_POSITION} AS queue_position"""
_VIEW_RESULT = (*JOBS.c, column("media", JSONB), column("queue_position", BigInteger))
_GET = _statement(
    f"SELECT {_VIEW_COLUMNS} FROM jobs WHERE jobs.id = :id AND jobs.owner_id = :owner_id",  # noqa: S608 - only column names and constants are formatted in
    _ID,
    _OWNER,
).columns(*_VIEW_RESULT)


class JobView(NamedTuple):
    """A job as its caller sees it (GET /status): the row, its stored files, and while queued
    how many queued jobs go before it."""

    job: JobRow
    media: list[MediaFile]
    queue_position: int | None = None


def _files(row: Any) -> list[MediaFile]:
    return [MediaFile(**m) for m in row.media]


def _view(row: Any) -> JobView:
    return JobView(_job(row), _files(row), row.queue_position)


def _listed(row: Any) -> JobView:
    return JobView(_job(row), _files(row))


async def get(session: AsyncSession, job_id: uuid.UUID, owner_id: uuid.UUID) -> JobView | None:
    """A caller's job with its stored files and queue position, in one round trip; None if it
    is not theirs."""
    row = (await session.execute(_GET, {"id": job_id, "owner_id": owner_id})).first()
    return None if row is None else _view(row)


@dataclass(frozen=True, slots=True)
class JobEventRow:
    """One entry of a job's history (`job_events`): ids grow in the order a job's changes
    commit, since every change that records one holds the job's row lock."""

    id: int
    kind: str
    from_status: JobStatus | None
    to_status: JobStatus | None
    attempt: int | None
    detail: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Watched:
    """A job as GET /status shows it, with the history entries after a given one and the id
    of its newest entry, all from one snapshot."""

    view: JobView
    events: list[JobEventRow]
    last_event_id: int | None


_WATCHED = _statement(
    f"""
    SELECT {_VIEW_COLUMNS},
        coalesce(
            (SELECT jsonb_agg(jsonb_build_object(
                        'id', e.id, 'kind', e.kind, 'from_status', e.from_status,
                        'to_status', e.to_status, 'attempt', e.attempt, 'detail', e.detail,
                        'created_at', e.created_at) ORDER BY e.id)
             FROM job_events e WHERE e.job_id = jobs.id AND e.id > :after),
            '[]'::jsonb) AS events,
        (SELECT max(e.id) FROM job_events e WHERE e.job_id = jobs.id) AS last_event_id
    FROM jobs WHERE jobs.id = :id AND jobs.owner_id = :owner_id
    """,  # noqa: S608 - only column names and constants are formatted in
    _ID,
    _OWNER,
    bindparam("after", type_=BigInteger),
).columns(*_VIEW_RESULT, column("events", JSONB), column("last_event_id", BigInteger))


def _event(entry: dict[str, Any]) -> JobEventRow:
    return JobEventRow(
        id=entry["id"],
        kind=entry["kind"],
        from_status=None if entry["from_status"] is None else JobStatus(entry["from_status"]),
        to_status=None if entry["to_status"] is None else JobStatus(entry["to_status"]),
        attempt=entry["attempt"],
        detail=entry["detail"],
        created_at=datetime.fromisoformat(entry["created_at"]),
    )


async def watched(
    session: AsyncSession, job_id: uuid.UUID, owner_id: uuid.UUID, after_event: int | None
) -> Watched | None:
    """A caller's job (as `get`) and its history entries after `after_event` (none when it is
    None), in one round trip; None if it is not theirs (or no longer exists)."""
    params = {"id": job_id, "owner_id": owner_id, "after": after_event}
    row = (await session.execute(_WATCHED, params)).first()
    if row is None:
        return None
    return Watched(_view(row), [_event(e) for e in row.events], row.last_event_id)


async def list_page(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    status: JobStatus | None,
    limit: int,
    cursor: str | None,
) -> Page[JobView]:
    """A caller's jobs with their files, newest first (no queue positions: a list would pay
    two counts per queued job). Raises core.pagination.InvalidCursor."""
    query = select(*JOBS.c, literal_column(_MEDIA_JSON, JSONB).label("media")).where(
        JOBS.c.owner_id == owner_id
    )
    if status is not None:
        query = query.where(JOBS.c.status == status)
    return await keyset_page(
        session,
        query,
        JOBS.c.created_at,
        JOBS.c.id,
        _listed,
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
        UPDATE jobs SET status = 'canceled', cancel_reason = 'caller', finished_at = now(),
                        updated_at = now()
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
    JobNotCancelable when it already finished. The gateway then asks the worker to cancel the
    prediction at Replicate (`core.messaging.cancel_message`); a worker step that finds the
    job canceled does it too."""
    params = {"id": job_id, "owner_id": owner_id}
    if (await session.execute(_CANCEL, params)).first() is not None:
        return True
    status = (await session.execute(_STATUS, params)).scalar_one_or_none()
    if status is None:
        return False
    raise JobNotCancelable(status)


class JobNotRetryable(Exception):
    def __init__(self, status: JobStatus) -> None:
        super().__init__(status.value)
        self.status = status


_RETRY = _statement(
    """
    WITH earlier AS (
        SELECT id, status FROM jobs
        WHERE id = :id AND owner_id = :owner_id AND status IN ('failed', 'canceled')
        FOR UPDATE
    ), job AS (
        UPDATE jobs SET
            status = 'queued', attempts = 0, retries = jobs.retries + 1, last_error = NULL,
            cancel_reason = NULL, deadline_at = NULL, started_at = NULL, finished_at = NULL,
            logs = NULL, progress = NULL, create_requested_at = NULL, enqueued_at = NULL,
            prediction_id = NULL,
            retired_prediction_ids = CASE WHEN jobs.prediction_id IS NULL
                THEN jobs.retired_prediction_ids
                ELSE array_append(jobs.retired_prediction_ids, jobs.prediction_id) END,
            updated_at = now()
        FROM earlier WHERE jobs.id = earlier.id
        RETURNING jobs.id, jobs.priority, jobs.retries, earlier.status AS from_status
    ), event AS (
        INSERT INTO job_events (job_id, kind, from_status, to_status, detail)
        SELECT id, 'retry', from_status, 'queued',
               'retried by the caller (retry ' || retries || '): a new attempt budget'
        FROM job
    )
    SELECT id, priority FROM job
    """,
    _ID,
    _OWNER,
).columns(JOBS.c.id, JOBS.c.priority)


async def retry(session: AsyncSession, job_id: uuid.UUID, owner_id: uuid.UUID) -> Priority | None:
    """A failed or canceled job queued again, with a new attempt budget and without its old
    prediction (kept aside, never adopted again); its priority, for publishing it. None if the
    caller has no such job; raises JobNotRetryable when it is queued, running or succeeded.
    Like a new job, it is an outbox entry again (`enqueued_at` NULL) until published."""
    params = {"id": job_id, "owner_id": owner_id}
    row = (await session.execute(_RETRY, params)).first()
    if row is not None:
        priority: Priority = row.priority
        return priority
    status = (await session.execute(_STATUS, params)).scalar_one_or_none()
    if status is None:
        return None
    raise JobNotRetryable(status)


# --- housekeeping: deadlines and media expiry ----------------------------------------------

_CANCEL_OVERDUE = _statement(
    """
    WITH overdue AS (
        SELECT id FROM jobs
        WHERE deadline_at <= now() AND status IN ('queued', 'running')
        ORDER BY deadline_at LIMIT :limit FOR UPDATE SKIP LOCKED
    ), job AS (
        UPDATE jobs SET status = 'canceled', cancel_reason = 'deadline', finished_at = now(),
                        updated_at = now()
        FROM overdue WHERE jobs.id = overdue.id
        RETURNING jobs.id, jobs.prediction_id
    ), event AS (
        INSERT INTO job_events (job_id, kind, to_status, detail)
        SELECT id, 'state', 'canceled', 'deadline passed (Cancel-After)' FROM job
    )
    SELECT id, prediction_id FROM job
    """
)


async def cancel_overdue(session: AsyncSession, limit: int) -> list[tuple[uuid.UUID, bool]]:
    """Cancel unfinished jobs whose Cancel-After deadline passed (`cancel_reason` deadline);
    each with whether it has a prediction to cancel at Replicate."""
    rows = await session.execute(_CANCEL_OVERDUE, {"limit": limit})
    return [(row.id, row.prediction_id is not None) for row in rows]


@dataclass(frozen=True, slots=True)
class ExpiringMedia:
    job_id: uuid.UUID
    index: int
    storage_key: str


_EXPIRING_MEDIA = _statement(
    """
    SELECT job_id, index, storage_key FROM job_media
    WHERE expired_at IS NULL AND created_at < now() - make_interval(secs => :ttl)
    ORDER BY created_at LIMIT :limit
    """
)
_MARK_MEDIA_EXPIRED = _statement(
    """
    WITH media AS (
        UPDATE job_media m SET expired_at = now()
        FROM jsonb_to_recordset(:files) AS f(job_id uuid, index int)
        WHERE m.job_id = f.job_id AND m.index = f.index AND m.expired_at IS NULL
        RETURNING m.job_id, m.index
    ), event AS (
        INSERT INTO job_events (job_id, kind, detail)
        SELECT job_id, 'expired',
               'media ' || string_agg(index::text, ', ' ORDER BY index) || ' deleted (TTL)'
        FROM media GROUP BY job_id
    )
    SELECT count(*) FROM media
    """,
    bindparam("files", type_=JSONB),
)


async def expiring_media(session: AsyncSession, ttl: timedelta, limit: int) -> list[ExpiringMedia]:
    """Stored files older than `ttl` that are not deleted yet, oldest first."""
    rows = await session.execute(_EXPIRING_MEDIA, {"ttl": ttl.total_seconds(), "limit": limit})
    return [ExpiringMedia(job_id, index, key) for job_id, index, key in rows]


async def mark_media_expired(session: AsyncSession, files: Sequence[ExpiringMedia]) -> None:
    """The files are deleted from storage: their status says `expired`, GET /media 410."""
    payload = [{"job_id": str(f.job_id), "index": f.index} for f in files]
    await session.execute(_MARK_MEDIA_EXPIRED, {"files": payload})


# --- the outbox relay -------------------------------------------------------------------------

_CLAIM_UNPUBLISHED = _statement(
    """
    SELECT id, priority, trace_parent FROM jobs
    WHERE enqueued_at IS NULL AND status = 'queued'
      AND updated_at < now() - make_interval(secs => :grace)
    ORDER BY created_at LIMIT :limit FOR UPDATE SKIP LOCKED
    """
).columns(JOBS.c.id, JOBS.c.priority, JOBS.c.trace_parent)
_CLAIM_STALE = _statement(
    """
    SELECT id, priority, trace_parent FROM jobs
    WHERE status IN ('queued', 'running') AND updated_at < now() - make_interval(secs => :stale)
    ORDER BY updated_at LIMIT :limit FOR UPDATE SKIP LOCKED
    """
).columns(JOBS.c.id, JOBS.c.priority, JOBS.c.trace_parent)
_CLAIM_AGED = _statement(
    """
    SELECT id, priority, trace_parent FROM jobs
    WHERE status = 'queued' AND priority <> 'high'
      AND enqueued_at < now() - make_interval(secs => :aged)
      AND updated_at < now() - make_interval(secs => :aged)
    ORDER BY enqueued_at LIMIT :limit FOR UPDATE SKIP LOCKED
    """
).columns(JOBS.c.id, JOBS.c.priority, JOBS.c.trace_parent)
_MARK_ENQUEUED = _statement(
    """
    WITH job AS (
        UPDATE jobs SET
            enqueued_at = now(),
            updated_at = CASE WHEN jobs.status IN ('queued', 'running') THEN now()
                ELSE jobs.updated_at END
        WHERE id = ANY(:ids)
        RETURNING id
    ), event AS (
        INSERT INTO job_events (job_id, kind, detail) SELECT id, 'enqueued', :detail FROM job
    )
    SELECT count(*) FROM job
    """,
    bindparam("ids", type_=ARRAY(UUID(as_uuid=True))),
)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A job whose message is to be published, at its priority."""

    job_id: uuid.UUID
    priority: Priority
    trace_parent: str | None = None  # the job's trace, continued by its message


def _outgoing(rows: Any) -> list[Outgoing]:
    return [Outgoing(row.id, row.priority, row.trace_parent) for row in rows]


async def claim_unpublished(session: AsyncSession, grace: timedelta, limit: int) -> list[Outgoing]:
    """Lock (inside the caller's transaction) up to `limit` queued jobs whose message is still
    not confirmed `grace` after they were queued (stored, or retried: a retried job is as old
    as its first submission, but its gateway's relay is publishing it now), oldest first; rows
    another relay holds are skipped, never waited for."""
    rows = await session.execute(
        _CLAIM_UNPUBLISHED, {"grace": grace.total_seconds(), "limit": limit}
    )
    return _outgoing(rows)


async def claim_stale(session: AsyncSession, stale_after: timedelta, limit: int) -> list[Outgoing]:
    """Lock queued or running jobs nobody has touched for `stale_after`: a message lost or
    dead-lettered with a broker. Sending them again is harmless (the worker resumes)."""
    rows = await session.execute(
        _CLAIM_STALE, {"stale": stale_after.total_seconds(), "limit": limit}
    )
    return _outgoing(rows)


async def claim_aged(session: AsyncSession, aged_after: timedelta, limit: int) -> list[Outgoing]:
    """Lock queued jobs below high priority whose message has waited `aged_after` since it was
    published (and no worker touched since): sent again at high priority, so a steady stream of
    high jobs never starves them. The first message, when it comes, finds the job running or
    done (harmless)."""
    rows = await session.execute(_CLAIM_AGED, {"aged": aged_after.total_seconds(), "limit": limit})
    return _outgoing(rows)


async def mark_enqueued(session: AsyncSession, job_ids: Sequence[uuid.UUID], detail: str) -> None:
    """RabbitMQ confirmed the jobs' messages (restarts their stale clock too). A job can finish
    before its confirm is recorded (a worker is that fast): its updated_at then stays what its
    caller saw, the time it finished."""
    await session.execute(_MARK_ENQUEUED, {"ids": list(job_ids), "detail": detail})


_COUNT_UNFINISHED = _statement(
    "SELECT status, count(*) AS n FROM jobs WHERE status IN ('queued', 'running') GROUP BY status"
).columns(JOBS.c.status, column("n"))


async def count_unfinished(session: AsyncSession) -> dict[JobStatus, int]:
    """Queued and running jobs, over every caller (for the worker's gauges)."""
    counts = {JobStatus.queued: 0, JobStatus.running: 0}
    for status, n in await session.execute(_COUNT_UNFINISHED):
        counts[status] = n
    return counts


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


_TRACE_PARENT = _statement("SELECT trace_parent FROM jobs WHERE id = :id", _ID)


async def trace_parent(session: AsyncSession, job_id: uuid.UUID) -> str | None:
    """The job's stored trace context (core.tracing), for a step whose message carries none."""
    result = await session.execute(_TRACE_PARENT, {"id": job_id})
    value: str | None = result.scalar_one_or_none()
    return value


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


LOGS_MAX = 4000  # characters: the tail of a running prediction's logs kept on the job

_RECORD_PROGRESS = _statement(
    """
    UPDATE jobs SET logs = :logs, progress = :progress, updated_at = now()
    WHERE id = :id AND status = 'running'
      AND (logs IS DISTINCT FROM :logs OR progress IS DISTINCT FROM :progress)
    """,
    _ID,
    bindparam("progress", type_=Float),
)


async def record_progress(
    session: AsyncSession, job_id: uuid.UUID, logs: str | None, progress: float | None
) -> None:
    """The running prediction's logs (their tail) and the progress they show; writes (and so
    notifies followers) only when either changed. No history entry: logs are not a change of
    state, and a long prediction would flood it."""
    tail = None if logs is None else logs[-LOGS_MAX:]
    await session.execute(_RECORD_PROGRESS, {"id": job_id, "logs": tail, "progress": progress})


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
