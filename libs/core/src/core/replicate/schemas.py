"""The prediction object as Replicate returns it (unknown keys are ignored)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PredictionStatus = Literal["starting", "processing", "succeeded", "failed", "canceled", "aborted"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "canceled", "aborted"})


class PredictionUrls(BaseModel):
    model_config = ConfigDict(extra="ignore")

    get: str | None = None
    cancel: str | None = None
    web: str | None = None
    stream: str | None = None


class Prediction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    model: str | None = None
    version: str | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    output: Any = None
    logs: str | None = None
    error: str | None = None
    status: PredictionStatus
    source: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    metrics: dict[str, Any] | None = None
    urls: PredictionUrls | None = None
    data_removed: bool = False
    webhook: str | None = None  # as the create sent it (in webhook deliveries' bodies)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    def output_urls(self) -> list[str]:
        """Output file URLs: flux models return a list, some models a single URL."""
        if isinstance(self.output, str):
            return [self.output]
        if isinstance(self.output, list):
            return [item for item in self.output if isinstance(item, str)]
        return []


class PredictionPage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    results: list[Prediction]
    next: str | None = None
    previous: str | None = None
