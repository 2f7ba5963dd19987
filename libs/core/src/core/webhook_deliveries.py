"""Caller webhooks in the database: each caller's signing secret, and the deliveries of their
jobs' events with every attempt. Reads and writes of these tables live here.

A delivery is never inserted from Python: the `jobs_record_webhook_delivery` trigger (migration
0007) inserts it in the very statement that moves a job to `running` (event `start`) or to a
terminal status (event `completed`), with a copy of the job as it was then. So no transition,
present or future, can forget its webhook, and no webhook exists for a transition that was
rolled back.

The gateway's sender takes due deliveries with a lease (`claim_due`): one statement that moves
their `next_attempt_at` past the time an attempt may take, so no row lock or connection is held
during the HTTP request, several gateways share the work, and a delivery whose gateway died is
due again when its lease ends. `record_attempt` stores the outcome and schedules the next try
(or ends the delivery) in one statement.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import BigInteger, Integer, Text, bindparam, column, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlmodel.ext.asyncio.session import AsyncSession

from core.jobs import JobRow, MediaFile
from core.schemas.generation import WebhookEvent
from core.schemas.webhooks import DeliveryStatus, WebhookDeliveryPublic

ERROR_MAX = 1000  # characters of an attempt's error kept

_OWNER = bindparam("owner_id", type_=UUID(as_uuid=True))
_JOB_ROW = TypeAdapter(JobRow)
_MEDIA = TypeAdapter(list[MediaFile])
_DELIVERIES = TypeAdapter(list[WebhookDeliveryPublic])


# --- secrets ----------------------------------------------------------------------------------

_SECRET = text("SELECT key FROM webhook_secrets WHERE owner_id = :owner_id").bindparams(_OWNER)
# The no-op update locks and returns a key another request stored first.
_CREATE_SECRET = text(
    """
    INSERT INTO webhook_secrets (owner_id, key) VALUES (:owner_id, :key)
    ON CONFLICT (owner_id) DO UPDATE SET key = webhook_secrets.key
    RETURNING key
    """
).bindparams(_OWNER)
_ROTATE_SECRET = text(
    """
    INSERT INTO webhook_secrets (owner_id, key) VALUES (:owner_id, :key)
    ON CONFLICT (owner_id) DO UPDATE SET
        previous_key = webhook_secrets.key,
        previous_key_expires_at = now() + make_interval(secs => :grace),
        key = excluded.key,
        rotated_at = now()
    RETURNING key
    """
).bindparams(_OWNER)


async def secret(session: AsyncSession, owner_id: uuid.UUID, new_key: str) -> str:
    """The caller's signing key; `new_key` becomes it if they have none yet."""
    key = (await session.execute(_SECRET, {"owner_id": owner_id})).scalar_one_or_none()
    if key is None:
        params = {"owner_id": owner_id, "key": new_key}
        key = (await session.execute(_CREATE_SECRET, params)).scalar_one()
    return str(key)


async def rotate_secret(
    session: AsyncSession, owner_id: uuid.UUID, new_key: str, grace: timedelta
) -> str:
    """Make `new_key` the caller's key; the key it replaces still signs (beside the new one)
    for `grace`. A second rotation within the grace drops the oldest key."""
    params = {"owner_id": owner_id, "key": new_key, "grace": grace.total_seconds()}
    return str((await session.execute(_ROTATE_SECRET, params)).scalar_one())


# --- the sender: claim, record ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: int
    event: WebhookEvent
    webhook_id: str
    url: str
    attempts: int  # made before this one
    owner_id: uuid.UUID
    job: dict[str, Any]  # as the trigger copied it; see `job_and_media`
    # The keys to sign with, current first (then the one it replaced, during its grace); empty
    # when the caller never asked for a secret.
    keys: list[str]

    def job_and_media(self) -> tuple[JobRow, list[MediaFile]]:
        """The job as it was when the event happened."""
        snapshot = dict(self.job)
        media = _MEDIA.validate_python(snapshot.pop("media", []))
        return _JOB_ROW.validate_python(snapshot), media


_CLAIM_DUE = text(
    """
    WITH due AS (
        SELECT id FROM webhook_deliveries
        WHERE status = 'pending' AND next_attempt_at <= now()
        ORDER BY next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE webhook_deliveries d
        SET next_attempt_at = now() + make_interval(secs => :lease), updated_at = now()
        FROM due WHERE d.id = due.id
        RETURNING d.id, d.job_id, d.event, d.webhook_id, d.url, d.attempts, d.job
    )
    SELECT c.id, c.event, c.webhook_id, c.url, c.attempts, c.job, j.owner_id,
           array_remove(ARRAY[s.key, CASE WHEN s.previous_key_expires_at > now()
                                          THEN s.previous_key END], NULL) AS keys
    FROM claimed c
    JOIN jobs j ON j.id = c.job_id
    LEFT JOIN webhook_secrets s ON s.owner_id = j.owner_id
    """
).columns(
    column("id", BigInteger),
    column("event", Text),
    column("webhook_id", Text),
    column("url", Text),
    column("attempts", Integer),
    column("job", JSONB),
    column("owner_id", UUID(as_uuid=True)),
    column("keys", ARRAY(Text)),
)


async def claim_due(session: AsyncSession, lease: timedelta, limit: int) -> list[ClaimedDelivery]:
    """Up to `limit` due deliveries, oldest due first, leased for `lease`: nobody else takes
    them before it ends (rows another sender is claiming are skipped, never waited for)."""
    rows = await session.execute(_CLAIM_DUE, {"lease": lease.total_seconds(), "limit": limit})
    return [
        ClaimedDelivery(
            id=row.id,
            event=row.event,
            webhook_id=row.webhook_id,
            url=row.url,
            attempts=row.attempts,
            owner_id=row.owner_id,
            job=row.job,
            keys=list(row.keys),
        )
        for row in rows
    ]


_RECORD_ATTEMPT = text(
    """
    WITH delivery AS (
        UPDATE webhook_deliveries SET
            attempts = attempts + 1,
            status = CASE WHEN :delivered THEN 'delivered'
                          WHEN attempts + 1 >= :max_attempts THEN 'failed'
                          ELSE 'pending' END,
            next_attempt_at = CASE WHEN :delivered OR attempts + 1 >= :max_attempts
                                   THEN now()
                                   ELSE now() + make_interval(secs => :retry_in) END,
            updated_at = now()
        WHERE id = :id AND status = 'pending'
        RETURNING id, attempts, status
    ), attempt AS (
        INSERT INTO webhook_attempts (delivery_id, attempt, status_code, error, duration_ms,
                                      created_at)
        SELECT id, attempts, CAST(:status_code AS integer), CAST(:error AS text),
               CAST(:duration_ms AS integer), now()
        FROM delivery
    )
    SELECT status FROM delivery
    """
)


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    status_code: int | None  # None: no HTTP answer
    error: str | None  # None: delivered
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.error is None


async def record_attempt(
    session: AsyncSession,
    delivery_id: int,
    outcome: AttemptOutcome,
    *,
    max_attempts: int,
    retry_in: timedelta,
) -> DeliveryStatus | None:
    """Store one attempt and, in the same statement, end the delivery (delivered, or failed
    once it had `max_attempts`) or make it due again after `retry_in`. The delivery's status
    after it; None if it was not pending any more (another sender recorded it first)."""
    params = {
        "id": delivery_id,
        "delivered": outcome.delivered,
        "max_attempts": max_attempts,
        "retry_in": retry_in.total_seconds(),
        "status_code": outcome.status_code,
        "error": None if outcome.error is None else outcome.error[:ERROR_MAX],
        "duration_ms": outcome.duration_ms,
    }
    status = (await session.execute(_RECORD_ATTEMPT, params)).scalar_one_or_none()
    return None if status is None else DeliveryStatus(status)


# --- the caller: a job's deliveries -----------------------------------------------------------

_FOR_JOB = (
    text(
        """
    SELECT coalesce((
        SELECT jsonb_agg(jsonb_build_object(
            'webhook_id', d.webhook_id, 'event', d.event, 'url', d.url, 'status', d.status,
            'next_attempt_at', CASE WHEN d.status = 'pending' THEN d.next_attempt_at END,
            'created_at', d.created_at, 'updated_at', d.updated_at,
            'attempts', coalesce((
                SELECT jsonb_agg(jsonb_build_object(
                    'attempt', a.attempt, 'status_code', a.status_code, 'error', a.error,
                    'duration_ms', a.duration_ms, 'created_at', a.created_at)
                    ORDER BY a.attempt, a.id)
                FROM webhook_attempts a WHERE a.delivery_id = d.id), '[]'::jsonb))
            ORDER BY d.id)
        FROM webhook_deliveries d WHERE d.job_id = jobs.id), '[]'::jsonb) AS deliveries
    FROM jobs WHERE id = :id AND owner_id = :owner_id
    """
    )
    .bindparams(bindparam("id", type_=UUID(as_uuid=True)), _OWNER)
    .columns(column("deliveries", JSONB))
)


async def for_job(
    session: AsyncSession, job_id: uuid.UUID, owner_id: uuid.UUID
) -> list[WebhookDeliveryPublic] | None:
    """A caller's job's deliveries with their attempts, oldest first, in one round trip; None
    if the job is not theirs."""
    row = (await session.execute(_FOR_JOB, {"id": job_id, "owner_id": owner_id})).first()
    if row is None:
        return None
    return _DELIVERIES.validate_python(row.deliveries)
