"""Generation jobs, their stored media, and the audit trail of every change and attempt.

Reads and writes of these tables live in one place, `core.jobs`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Enum,
    ForeignKey,
    Identity,
    Index,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from core.models.base import created_at_field, updated_at_field, uuid_pk
from core.schemas.generation import JobStatus


def _tz() -> Any:
    return DateTime(timezone=True)


def status_type() -> Enum:
    """A status column holds the enum's values as text (no PostgreSQL enum type to migrate),
    and reads back as JobStatus: one enum end to end."""
    return Enum(
        JobStatus,
        native_enum=False,
        create_constraint=False,  # the table's own CHECK constraint names the values
        length=16,
        values_callable=lambda kind: [member.value for member in kind],
    )


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s.value}'" for s in JobStatus) + ")", name="status_known"
        ),
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
