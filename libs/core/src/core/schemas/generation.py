"""Media-generation request/response models, shared by the gateway and the worker."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from core.models.job import JobStatus

PROMPT_MAX = 2000
AspectRatio = Literal[
    "1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21"
]


class FluxSchnellParams(BaseModel):
    """Inputs of a flux-schnell-style model (black-forest-labs/flux-schnell), besides the prompt."""

    model_config = ConfigDict(extra="forbid")

    aspect_ratio: AspectRatio = "1:1"
    num_outputs: int = Field(default=1, ge=1, le=4)
    num_inference_steps: int = Field(default=4, ge=1, le=4)
    seed: int | None = Field(
        default=None,
        ge=0,
        le=2**31 - 1,
        description="Omit for a seed derived from the job id (stable across retries)",
    )
    output_format: Literal["webp", "jpg", "png"] = "webp"
    output_quality: int = Field(default=80, ge=0, le=100)
    disable_safety_checker: bool = False
    go_fast: bool = True
    megapixels: Literal["1", "0.25"] = "1"


Prompt = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=PROMPT_MAX)
]


class GenerateRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "prompt": "a red fox in snow, watercolor",
                    "params": {"aspect_ratio": "16:9", "num_outputs": 1, "output_format": "png"},
                }
            ]
        },
    )

    prompt: Prompt = Field(description="1-2000 characters")
    model: str | None = Field(
        default=None,
        max_length=200,
        description="owner/name of the model; defaults to the gateway's configured model",
    )
    params: FluxSchnellParams = Field(default_factory=FluxSchnellParams)


class GenerateAccepted(BaseModel):
    job_id: uuid.UUID
    status: JobStatus
    status_url: str


class MediaPublic(BaseModel):
    index: int
    url: str = Field(description="GET this URL (with your bearer token) for the file")
    content_type: str
    size_bytes: int
    sha256: str


class JobPublic(BaseModel):
    id: uuid.UUID
    status: JobStatus
    prompt: str
    model: str
    params: dict[str, Any]
    attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    media: list[MediaPublic]


class JobSummary(BaseModel):
    id: uuid.UUID
    status: JobStatus
    prompt: str
    model: str
    attempts: int
    created_at: datetime
    finished_at: datetime | None
    status_url: str


class JobPage(BaseModel):
    items: list[JobSummary]
    next_cursor: str | None
