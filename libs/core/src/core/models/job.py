"""Generation jobs, their stored media, and the audit trail of every change and attempt."""

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
    ForeignKey,
    Identity,
    Index,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from core.models.base import created_at_field, updated_at_field, uuid_pk


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.canceled})


def _tz() -> Any:
    return DateTime(timezone=True)


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
        # The sweeper's scan: only non-terminal jobs, oldest first.
        Index(
            "ix_jobs_unfinished_updated_at",
            "updated_at",
            postgresql_where="status IN ('queued', 'running')",
        ),
    )

    id: uuid.UUID = uuid_pk()
    owner_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    prompt: str = Field(sa_column=Column(Text, nullable=False))
    model: str = Field(max_length=200)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    status: str = Field(default=JobStatus.queued.value, max_length=16)
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    prediction_id: str | None = Field(default=None, max_length=100)
    # Set just before a create call: a later run that finds it set and no prediction_id must
    # look for the prediction that call may have made before paying for another.
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
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str | None = Field(default=None, max_length=16)
    attempt: int | None = None
    detail: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = created_at_field()
