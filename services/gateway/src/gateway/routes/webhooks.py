"""POST /webhooks/replicate: Replicate's prediction events, verified, handed to the worker.

The worker creates each prediction with `webhook=<public base>/webhooks/replicate?job_id=<job>`
(REPLICATE_WEBHOOK_BASE_URL). A delivery is verified as Replicate signs it (Standard
Webhooks; core.webhooks) before anything else is looked at, then published as
`prediction_webhook(job_id, prediction)` with a publisher confirm; the worker takes it like
the answer of a poll. A 2xx only after RabbitMQ confirmed, so a delivery is never lost:
Replicate retries a `completed` event that got no 2xx. Duplicates are harmless (the worker's
transitions are conditional).
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from core.amqp import PublishFailed
from core.messaging import prediction_webhook_message
from core.replicate import TERMINAL_STATUSES, Prediction
from core.web_errors import error_responses, invalid
from core.webhooks import (
    ID_HEADER,
    REPLICATE_WEBHOOK_PATH,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    InvalidWebhook,
    SignatureMismatch,
    SignedHeaders,
)
from gateway.deps import GatewayDep
from gateway.webhook_secret import SecretUnavailable

router = APIRouter(tags=["webhooks"])

# Replicate's ids are short lowercase base32; the worker puts them into URL paths.
PREDICTION_ID = re.compile(r"[a-zA-Z0-9]{1,64}")
RETRY_SOON = {"Retry-After": "5"}
_STATUSES = ["starting", "processing", *sorted(TERMINAL_STATUSES)]
PREDICTION_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "title": "Prediction",
                "description": "The prediction as Replicate's GET /v1/predictions/{id} shows it "
                "(fields the platform does not read are ignored).",
                "type": "object",
                "required": ["id", "status"],
                "properties": {
                    "id": {"type": "string", "pattern": f"^{PREDICTION_ID.pattern}$"},
                    "status": {"type": "string", "enum": _STATUSES},
                    "output": {},
                    "logs": {"type": ["string", "null"]},
                    "error": {"type": ["string", "null"]},
                    "webhook": {
                        "type": ["string", "null"],
                        "description": "The URL the prediction was created with; when "
                        "given, its job_id must be this delivery's.",
                    },
                },
            }
        }
    },
}


def _header(name: str) -> Any:
    return Header(
        alias=name,
        description=f"Standard Webhooks `{name}`, as Replicate sends it; without it: 401.",
    )


async def verified_body(
    request: Request,
    gateway: GatewayDep,
    webhook_id: Annotated[str | None, _header(ID_HEADER)] = None,
    webhook_timestamp: Annotated[str | None, _header(TIMESTAMP_HEADER)] = None,
    webhook_signature: Annotated[str | None, _header(SIGNATURE_HEADER)] = None,
) -> bytes:
    """The raw body, once its signature checks out; 401 for anything unsigned, malformed,
    stale or forged. Runs before the query and body are validated, so nothing about an
    unsigned request is looked at."""
    headers = {
        ID_HEADER: webhook_id or "",
        TIMESTAMP_HEADER: webhook_timestamp or "",
        SIGNATURE_HEADER: webhook_signature or "",
    }
    try:
        signed = SignedHeaders.parse(headers)
    except InvalidWebhook as exc:
        raise _refused(exc) from None
    body = await request.body()
    secrets = gateway.webhook_secret
    try:
        secret = await secrets.current()
        try:
            signed.verify(secret, body)
        except SignatureMismatch:
            # Replicate may have rotated the secret since we asked (rate limited inside).
            if (newer := await secrets.newer_than(secret)) is None:
                raise
            signed.verify(newer, body)
    except InvalidWebhook as exc:
        raise _refused(exc) from None
    except SecretUnavailable:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="Cannot verify webhooks right now (Replicate's signing secret is unknown)",
            headers=RETRY_SOON,
        ) from None
    return body


def _refused(exc: InvalidWebhook) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=f"Webhook refused: {exc}")


def _names_job(webhook: str, job_id: uuid.UUID) -> bool:
    """Whether a prediction's `webhook` (from the create) is this job's URL."""
    try:
        named = parse_qs(urlsplit(webhook).query).get("job_id", [])
        return [uuid.UUID(value) for value in named] == [job_id]
    except ValueError:
        return False


def _prediction(body: bytes) -> Prediction:
    try:
        prediction = Prediction.model_validate_json(body)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from None
    if PREDICTION_ID.fullmatch(prediction.id) is None:
        raise invalid(("body", "id"), "Not a prediction id", value=prediction.id)
    return prediction


@router.post(
    REPLICATE_WEBHOOK_PATH,
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Receive a prediction event from Replicate (signed webhook)",
    openapi_extra={"requestBody": PREDICTION_BODY},
    responses={
        204: {"description": "Verified and handed to the worker"},
        **error_responses(
            (413, 422),
            {
                401: "Unsigned, malformed, stale (over 5 minutes) or forged delivery, or one "
                "made for another job",
                503: "The broker refused it or Replicate's secret is unknown: Replicate retries",
            },
        ),
    },
)
async def replicate_webhook(
    job_id: Annotated[
        uuid.UUID, Query(description="The job the prediction was created for (set by the worker)")
    ],
    body: Annotated[bytes, Depends(verified_body)],
    gateway: GatewayDep,
) -> Response:
    prediction = _prediction(body)
    # The signature covers the body, not the URL: a delivery replayed to another job's URL
    # is refused when the body says (as Replicate's do) which URL it was made for.
    if prediction.webhook is not None and not _names_job(prediction.webhook, job_id):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail="Webhook refused: it was made for another job"
        )
    message = prediction_webhook_message(str(job_id), prediction.model_dump(mode="json"))
    try:
        await gateway.publisher.publish(message)
    except PublishFailed:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="The broker is unavailable; the delivery was not taken",
            headers=RETRY_SOON,
        ) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)
