"""Media-generation request/response models, shared by the gateway and the worker."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from core.schemas.text import MULTI_LINE


class JobStatus(StrEnum):
    """A job's state: queued -> running -> succeeded | failed | canceled."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


class Priority(StrEnum):
    """Which queued jobs the workers take first; low still progresses (no starvation)."""

    low = "low"
    normal = "normal"
    high = "high"

    @property
    def amqp(self) -> int:
        """The AMQP message priority (the generation queue has x-max-priority 2)."""
        return {"low": 0, "normal": 1, "high": 2}[self.value]


class CancelReason(StrEnum):
    """Why a job was canceled: its caller asked, or its Cancel-After deadline passed."""

    caller = "caller"
    deadline = "deadline"


WebhookEvent = Literal["start", "completed"]

# Cancel-After, in Replicate's syntax: bare seconds, or hours, minutes and seconds ("1h30m").
CANCEL_AFTER_PATTERN = (
    r"^(?:[0-9]{1,6}|[0-9]{1,3}h(?:[0-9]{1,5}m)?(?:[0-9]{1,6}s)?"
    r"|[0-9]{1,5}m(?:[0-9]{1,6}s)?|[0-9]{1,6}s)$"
)
CANCEL_AFTER_MIN_SECONDS = 5  # Replicate's minimum: a shorter value counts as 5 s
_DURATION_PART = re.compile(r"([0-9]+)([hms])")


def cancel_after_seconds(value: str) -> int:
    """Seconds of a Cancel-After value (`30s`, `5m`, `1h30m`, `90`), at least 5; raises
    ValueError for another syntax."""
    if not re.fullmatch(CANCEL_AFTER_PATTERN, value):
        raise ValueError("use a duration like 30s, 5m, 1h30m or bare seconds")
    if value.isdigit():
        seconds = int(value)
    else:
        unit = {"h": 3600, "m": 60, "s": 1}
        seconds = sum(int(n) * unit[u] for n, u in _DURATION_PART.findall(value))
    return max(seconds, CANCEL_AFTER_MIN_SECONDS)


TERMINAL_STATUSES = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.canceled})
UNFINISHED_STATUSES = frozenset({JobStatus.queued, JobStatus.running})

PROMPT_MAX = 2000
IDEMPOTENCY_KEY_MAX = 255
AspectRatio = Literal[
    "1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21"
]


def _whole_float_to_int(value: Any) -> Any:
    """JSON Schema's `integer` is any number without a fraction, 2.0 included."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# With a strict `int`: an integer exactly as JSON Schema means it, 2 and 2.0, never 2.5, "2" or
# true. It goes after the bounds, so that they reach the OpenAPI document as minimum/maximum.
WHOLE = BeforeValidator(_whole_float_to_int)


class FluxSchnellParams(BaseModel):
    """Inputs of a flux-schnell-style model (black-forest-labs/flux-schnell), besides the prompt.

    Strict: a number is a JSON number and a flag a JSON boolean, as the schema says; "2" or 0
    for them is a 422, not silently coerced into something the caller may not have meant.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    aspect_ratio: AspectRatio = "1:1"
    num_outputs: Annotated[int, Field(ge=1, le=4), WHOLE] = 1
    num_inference_steps: Annotated[int, Field(ge=1, le=4), WHOLE] = 4
    seed: Annotated[int, Field(ge=0, le=2**31 - 1), WHOLE] | None = Field(
        default=None,
        description="0 to 2147483647; omit for a seed derived from the job id (stable across "
        "retries)",
    )
    output_format: Literal["webp", "jpg", "png"] = "webp"
    output_quality: Annotated[int, Field(ge=0, le=100), WHOLE] = 80
    disable_safety_checker: bool = False
    go_fast: bool = True
    megapixels: Literal["1", "0.25"] = "1"


Prompt = Annotated[str, StringConstraints(min_length=1, max_length=PROMPT_MAX), MULTI_LINE]
# 1-255 printable ASCII characters (space to tilde): what any HTTP stack carries unchanged.
IdempotencyKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=IDEMPOTENCY_KEY_MAX, pattern=r"^[\x20-\x7e]+$"),
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

    prompt: Prompt = Field(
        description="1-2000 characters, not blank; line breaks and tabs are fine, other control "
        "characters are not; surrounding whitespace is trimmed"
    )
    model: str | None = Field(
        default=None,
        max_length=200,
        description="owner/name of the model; defaults to the gateway's configured model",
    )
    params: FluxSchnellParams = Field(default_factory=FluxSchnellParams)
    priority: Priority = Field(
        default=Priority.normal,
        description="high jobs are taken before normal ones, normal before low; a backlog of "
        "low jobs never delays a high one by more than the steps a worker already holds",
    )
    webhook: str | None = Field(
        default=None,
        max_length=2000,
        description="an https URL that gets the job (as GET /status shows it) when the events "
        "in webhook_events_filter happen; signed with Standard Webhooks headers using your "
        "secret from GET /webhooks/default/secret",
    )
    webhook_events_filter: list[WebhookEvent] | None = Field(
        default=None,
        min_length=1,
        max_length=2,
        description="which events are sent: start (the job began running) and completed "
        "(succeeded, failed or canceled; retried until delivered). Default: both",
    )


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
    expired: bool = Field(
        default=False,
        description="the file was deleted after GATEWAY_MEDIA_TTL_SECONDS (GET answers 410)",
    )


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
    priority: Priority = Priority.normal
    deadline_at: datetime | None = Field(
        default=None, description="Cancel-After: canceled if not finished by then"
    )
    cancel_reason: CancelReason | None = Field(
        default=None, description="why a canceled job was canceled: caller or deadline"
    )
    queue_position: int | None = Field(
        default=None,
        description="while queued: how many queued jobs the workers take before this one "
        "(approximate: jobs of higher priority, and of equal priority created earlier)",
    )
    logs: str | None = Field(default=None, description="while running: the prediction's logs")
    progress: float | None = Field(
        default=None, description="while running: 0 to 1, when the logs show progress"
    )
    retries: int = Field(default=0, description="how many times the caller retried the job")


class JobEventPublic(BaseModel):
    """One entry of a job's history (the `change` events of GET /jobs/{id}/events)."""

    id: int = Field(description="grows with each entry; the SSE event id (Last-Event-ID)")
    kind: str = Field(description="created, enqueued, attempt, state, error, ...")
    from_status: JobStatus | None
    to_status: JobStatus | None
    attempt: int | None
    detail: str | None
    created_at: datetime


class JobLogs(BaseModel):
    """A running job's logs and progress (the `logs` events of GET /jobs/{id}/events)."""

    logs: str | None
    progress: float | None


class JobSummary(BaseModel):
    """A job in a list: enough for a gallery (its files included); GET its status_url for
    the rest."""

    id: uuid.UUID
    status: JobStatus
    prompt: str
    model: str
    attempts: int
    created_at: datetime
    finished_at: datetime | None
    status_url: str
    priority: Priority = Priority.normal
    last_error: str | None = None
    media: list[MediaPublic] = Field(default_factory=list)


class JobPage(BaseModel):
    items: list[JobSummary]
    next_cursor: str | None
