"""Pet request/response models, shared by pet_api and report_worker."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from core.schemas.text import SINGLE_LINE, not_nullable

PET_NAME_MAX = 100


class PetType(StrEnum):
    cat = "cat"
    dog = "dog"
    bird = "bird"
    fish = "fish"
    rabbit = "rabbit"
    hamster = "hamster"
    reptile = "reptile"
    other = "other"


PetName = Annotated[str, StringConstraints(min_length=1, max_length=PET_NAME_MAX), SINGLE_LINE]


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


class PetCreate(BaseModel):
    """A new pet, or the full replacement of one (PUT)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Rex", "pet_type": "dog"}]},
    )

    name: PetName = Field(
        description="1-100 characters, not blank, no control characters; "
        "surrounding spaces are trimmed"
    )
    pet_type: PetType = Field(description="One of: " + ", ".join(PetType))

    _lower_type = field_validator("pet_type", mode="before")(_lower)


class PetUpdate(BaseModel):
    """A partial update (PATCH): only the fields sent change; null is not a value."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "Rex the Second"}]}
    )

    # Optional but never null: the spec shows the plain types, and `_not_null` refuses a null.
    name: PetName | None = Field(default=None, json_schema_extra=not_nullable)
    pet_type: PetType | None = Field(default=None, json_schema_extra=not_nullable)

    _lower_type = field_validator("pet_type", mode="before")(_lower)

    @field_validator("name", "pet_type", mode="after")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be omitted but not null")
        return value


class PetPublic(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "6f1c2a9e-3b7d-4c1e-9a58-0d2f4b6e8a10",
                    "name": "Rex",
                    "pet_type": "dog",
                    "created_at": "2026-11-24T12:00:00Z",
                    "updated_at": "2026-11-24T12:00:00Z",
                }
            ]
        },
    )

    id: uuid.UUID
    name: str
    pet_type: PetType
    created_at: datetime
    updated_at: datetime


class PetPage(BaseModel):
    items: list[PetPublic]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= to get the next page; null on the last page"
    )
