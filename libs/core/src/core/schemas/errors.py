from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorResponse(BaseModel):
    """Every error body: a human-readable `detail` (a list of field errors for 422)."""

    detail: str | list[dict[str, Any]]
