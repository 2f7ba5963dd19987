"""Every error body the APIs send: `detail` is a sentence, or for 422 a list of field errors."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorResponse(BaseModel):
    """Any error but 422: a human-readable `detail`."""

    detail: str


class FieldError(BaseModel):
    type: str = Field(description="Machine-readable kind, e.g. missing, string_too_long")
    loc: list[str | int] = Field(description='Where: ["body", "params", "seed"], ["query", …]')
    msg: str = Field(description="What is wrong, for a human")
    input: Any = Field(
        default=None, description="What was sent (numbers, or at most 64 characters of text)"
    )
    ctx: dict[str, Any] | None = Field(default=None, description="The rule's parameters")


class ValidationErrorResponse(BaseModel):
    """422: every problem with the request, one entry each."""

    detail: list[FieldError]
