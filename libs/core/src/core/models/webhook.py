"""Caller webhooks: each caller's signing secret, and every delivery with its attempts.

Reads and writes of these tables live in one place, `core.webhook_deliveries`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Identity, Index, Integer, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from core.models.base import created_at_field, updated_at_field


def _tz() -> DateTime:
    return DateTime(timezone=True)


class WebhookSecret(SQLModel, table=True):
    """A caller's `whsec_` key; after a rotation the previous key signs too, until it expires."""

    __tablename__ = "webhook_secrets"

    owner_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    )
    key: str = Field(max_length=100)
    previous_key: str | None = Field(default=None, max_length=100)
    previous_key_expires_at: datetime | None = Field(default=None, sa_type=_tz())
    created_at: datetime = created_at_field()
    rotated_at: datetime | None = Field(default=None, sa_type=_tz())


class WebhookDelivery(SQLModel, table=True):
    """One event of one job for its caller's webhook; retried until delivered or given up.

    Rows are inserted only by the `jobs_record_webhook_delivery` trigger (migration 0007), in
    the statement that changes the job's status.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_job_id", "job_id"),
        # The sender's scan: pending deliveries that are due.
        Index(
            "ix_webhook_deliveries_pending_next_attempt_at",
            "next_attempt_at",
            postgresql_where="status = 'pending'",
        ),
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )
    job_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    )
    event: str = Field(max_length=16)  # start, completed
    webhook_id: str = Field(max_length=40, unique=True)  # the same on every attempt
    url: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="pending", max_length=16)  # pending, delivered, failed
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    next_attempt_at: datetime = Field(sa_type=_tz())
    # The job (every column, and its media) as it was when the event happened: every attempt
    # sends this, whatever the job became since.
    job: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class WebhookAttempt(SQLModel, table=True):
    """One POST of a delivery: what the receiver answered, or why it could not."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery_id", "delivery_id"),)

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )
    delivery_id: int = Field(
        sa_column=Column(
            BigInteger, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False
        )
    )
    attempt: int
    status_code: int | None = None
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    duration_ms: int
    created_at: datetime = created_at_field()
