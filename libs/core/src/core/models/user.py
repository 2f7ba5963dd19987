from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Index
from sqlmodel import Field, SQLModel

from core.models.base import created_at_field, uuid_pk


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: uuid.UUID = uuid_pk()
    username: str = Field(max_length=64, unique=True)
    hashed_password: str = Field(max_length=255)
    is_active: bool = Field(default=True)
    created_at: datetime = created_at_field()


class LoginFailure(SQLModel, table=True):
    """Failed logins per username (hashed) or client address, in the current window; see
    core.login_limits."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_window_started_at", "window_started_at"),)

    key: str = Field(primary_key=True, max_length=100)
    failures: int
    window_started_at: datetime = Field(sa_type=DateTime(timezone=True))
