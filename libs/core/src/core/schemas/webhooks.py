"""What callers see of their webhooks: the signing secret, and each delivery with its attempts."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from core.schemas.generation import WebhookEvent

# Read from JSON the database built, in the session's time zone: shown in UTC, as every other
# time the API shows.
UtcDatetime = Annotated[datetime, AfterValidator(lambda value: value.astimezone(UTC))]


class DeliveryStatus(StrEnum):
    """pending (an attempt is due or under way), delivered (a 2xx answer), failed (given up)."""

    pending = "pending"
    delivered = "delivered"
    failed = "failed"


class WebhookSecretPublic(BaseModel):
    key: str = Field(
        description="`whsec_` and a base64 key: verify the `webhook-signature` of every "
        "delivery with it (Standard Webhooks)"
    )


class WebhookAttemptPublic(BaseModel):
    attempt: int = Field(description="1 for the first try")
    status_code: int | None = Field(
        description="what your endpoint answered; null when it did not answer (see error)"
    )
    error: str | None = Field(description="why the attempt failed; null when it succeeded")
    duration_ms: int
    created_at: UtcDatetime = Field(description="when the attempt ended")


class WebhookDeliveryPublic(BaseModel):
    webhook_id: str = Field(description="the `webhook-id` header, the same on every attempt")
    event: WebhookEvent
    url: str
    status: DeliveryStatus
    next_attempt_at: UtcDatetime | None = Field(
        description="while pending: when the next attempt is due (or under way)"
    )
    created_at: UtcDatetime = Field(description="when the event happened")
    updated_at: UtcDatetime
    attempts: list[WebhookAttemptPublic]


class WebhookDeliveryList(BaseModel):
    items: list[WebhookDeliveryPublic] = Field(description="oldest event first")
