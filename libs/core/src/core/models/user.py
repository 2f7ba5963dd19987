from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from core.models.base import created_at_field, uuid_pk


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: uuid.UUID = uuid_pk()
    username: str = Field(max_length=64, unique=True)
    hashed_password: str = Field(max_length=255)
    is_active: bool = Field(default=True)
    created_at: datetime = created_at_field()
