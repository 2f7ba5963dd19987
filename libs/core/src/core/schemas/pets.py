"""Pet request/response models, shared by pet_api and report_worker."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

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


def no_control_chars(value: str) -> str:
    """Refuse NUL (PostgreSQL cannot store it) and other control characters (tabs, newlines
    and the like only break listings and reports)."""
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError("must not contain control characters")
    return value


PetName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=PET_NAME_MAX),
    AfterValidator(no_control_chars),
]


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


class PetCreate(BaseModel):
    """A new pet, or the full replacement of one (PUT)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Rex", "pet_type": "dog"}]},
    )

    name: PetName = Field(description="1-100 characters; surrounding spaces are trimmed")
    pet_type: PetType = Field(description="One of: " + ", ".join(PetType))

    _lower_type = field_validator("pet_type", mode="before")(_lower)


class PetUpdate(BaseModel):
    """A partial update (PATCH): only the fields sent change; null is not a value."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "Rex the Second"}]}
    )

    name: PetName | None = None
    pet_type: PetType | None = None

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
