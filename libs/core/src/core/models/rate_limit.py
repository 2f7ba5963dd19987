from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, DateTime, ForeignKey, Index
from sqlmodel import Field, SQLModel


class RateWindow(SQLModel, table=True):
    """Creates per caller in one minute window; see core.rate_limits."""

    __tablename__ = "rate_windows"
    __table_args__ = (Index("ix_rate_windows_window_start", "window_start"),)

    owner_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    )
    window_start: datetime = Field(sa_column=Column(DateTime(timezone=True), primary_key=True))
    count: int
