from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Index
from sqlmodel import Field, SQLModel

from core.models.base import created_at_field, updated_at_field, uuid_pk
from core.schemas.pets import PET_NAME_MAX, PetType


class Pet(SQLModel, table=True):
    __tablename__ = "pets"
    __table_args__ = (
        CheckConstraint(
            "pet_type IN (" + ", ".join(f"'{kind.value}'" for kind in PetType) + ")",
            name="pet_type_known",
        ),
        CheckConstraint("length(btrim(name)) > 0", name="name_not_blank"),
        # Keyset pagination and the report both walk pets in (created_at, id) order.
        Index("ix_pets_created_at_id", "created_at", "id"),
        Index("ix_pets_pet_type_created_at_id", "pet_type", "created_at", "id"),
    )

    id: uuid.UUID = uuid_pk()
    name: str = Field(max_length=PET_NAME_MAX)
    pet_type: str = Field(max_length=16)
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
