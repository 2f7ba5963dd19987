"""Generation jobs, their stored media, and the audit trail of every change and attempt.

Reads and writes of these tables live in one place, `core.jobs`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Identity,
    Index,
    SmallInteger,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from core.models.base import created_at_field, updated_at_field, uuid_pk
from core.schemas.generation import CancelReason, JobStatus, Priority


def _tz() -> Any:
    return DateTime(timezone=True)


def text_enum(kind: type[StrEnum], length: int) -> Enum:
    """A column of one of our StrEnums: its values as text (no PostgreSQL enum type to
    migrate), read back as the enum; the table's CHECK constraint names the values."""
    return Enum(
        kind,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda k: [member.value for member in k],
    )


def status_type() -> Enum:
    """One enum end to end, from the column to the JSON."""
    return text_enum(JobStatus, 16)


def _check_known(column: str, kind: type[StrEnum]) -> CheckConstraint:
    values = ", ".join(f"'{member.value}'" for member in kind)
    return CheckConstraint(f"{column} IN ({values})", name=f"{column}_known")


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (
        _check_known("status", JobStatus),
        _check_known("priority", Priority),
        _check_known("cancel_reason", CancelReason),
        UniqueConstraint("owner_id", "idempotency_key", name="uq_jobs_owner_idempotency_key"),
        Index("ix_jobs_owner_created_at_id", "owner_id", "created_at", "id"),
        # One prediction belongs to one job: recovery of a lost create can never adopt another
        # job's prediction, even when both sent the same input.
        Index(
            "uq_jobs_prediction_id",
            "prediction_id",
            unique=True,
            postgresql_where="prediction_id IS NOT NULL",
        ),
        # The stale-job scan: only non-terminal jobs, oldest first.
        Index(
            "ix_jobs_unfinished_updated_at",
            "updated_at",
            postgresql_where="status IN ('queued', 'running')",
        ),
        # Deadlines: the unfinished jobs that have one, soonest first.
        Index(
            "ix_jobs_unfinished_deadline_at",
            "deadline_at",
            postgresql_where="deadline_at IS NOT NULL AND status IN ('queued', 'running')",
        ),
        # Queue position: the queued jobs, by priority and age.
        Index(
            "ix_jobs_queued_priority_created_at",
            "priority",
            "created_at",
            postgresql_where="status = 'queued'",
        ),
        # The outbox: queued jobs whose message RabbitMQ has not confirmed yet.
        Index(
            "ix_jobs_unpublished_created_at",
            "created_at",
            postgresql_where="enqueued_at IS NULL AND status = 'queued'",
        ),
    )

    id: uuid.UUID = uuid_pk()
    owner_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    prompt: str = Field(sa_column=Column(Text, nullable=False))
    model: str = Field(max_length=200)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    status: JobStatus = Field(
        default=JobStatus.queued, sa_column=Column(status_type(), nullable=False)
    )
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    prediction_id: str | None = Field(default=None, max_length=100)
    # Set when an attempt that may create a prediction begins: a later attempt that finds it
    # set and no prediction_id looks for the prediction a lost create made before paying for
    # another. It keeps the earliest such time, so every earlier create is searched for.
    create_requested_at: datetime | None = Field(default=None, sa_type=_tz())
    idempotency_key: str | None = Field(default=None, max_length=255)
    request_hash: str | None = Field(default=None, max_length=64)
    # Outbox marker: NULL until RabbitMQ confirmed the job's message.
    enqueued_at: datetime | None = Field(default=None, sa_type=_tz())
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
    started_at: datetime | None = Field(default=None, sa_type=_tz())
    finished_at: datetime | None = Field(default=None, sa_type=_tz())
    priority: Priority = Field(
        default=Priority.normal,
        sa_column=Column(text_enum(Priority, 8), nullable=False, server_default="normal"),
    )
    # Cancel-After: an unfinished job is canceled at this time (cancel_reason 'deadline').
    deadline_at: datetime | None = Field(default=None, sa_type=_tz())
    cancel_reason: CancelReason | None = Field(
        default=None, sa_column=Column(text_enum(CancelReason, 16), nullable=True)
    )
    # The caller's webhook and the events it wants ('start', 'completed').
    webhook: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    webhook_events_filter: list[str] | None = Field(
        default=None, sa_column=Column(ARRAY(Text), nullable=True)
    )
    # The running prediction's logs (the tail) and the progress they show (0..1).
    logs: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    progress: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    # POST /jobs/{id}/retry: how many times the caller retried the job, and the predictions of
    # earlier runs (never adopted again by a later run's recovery of a lost create).
    retries: int = Field(
        default=0, sa_column=Column(SmallInteger, nullable=False, server_default=text("0"))
    )
    retired_prediction_ids: list[str] = Field(
        default_factory=list,
        sa_column=Column(ARRAY(Text), nullable=False, server_default=text("'{}'")),
    )
    # The W3C traceparent of the request that created the job (only with tracing on): the
    # relay and the worker continue the job's one trace from it, long after that request.
    trace_parent: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class JobMedia(SQLModel, table=True):
    __tablename__ = "job_media"
    __table_args__ = (UniqueConstraint("job_id", "index", name="uq_job_media_job_id_index"),)

    id: uuid.UUID = uuid_pk()
    job_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    )
    index: int
    storage_key: str = Field(max_length=500)
    content_type: str = Field(max_length=100)
    size_bytes: int = Field(sa_column=Column(BigInteger, nullable=False))
    sha256: str = Field(max_length=64)
    source_url: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = created_at_field()
    # GATEWAY_MEDIA_TTL_SECONDS: when the file was deleted from storage (GET /media: 410).
    expired_at: datetime | None = Field(default=None, sa_type=_tz())


class JobEvent(SQLModel, table=True):
    """Append-only: every state change, attempt and error of a job, in order."""

    __tablename__ = "job_events"
    __table_args__ = (Index("ix_job_events_job_id_id", "job_id", "id"),)

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )
    job_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    )
    kind: str = Field(max_length=32)  # created, enqueued, attempt, state, error, ...
    from_status: JobStatus | None = Field(
        default=None, sa_column=Column(status_type(), nullable=True)
    )
    to_status: JobStatus | None = Field(
        default=None, sa_column=Column(status_type(), nullable=True)
    )
    attempt: int | None = None
    detail: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = created_at_field()
