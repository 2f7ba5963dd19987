from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request, Response, status

from core import jobs
from core.auth import AUTH_ERRORS, CurrentUser
from core.schemas.generation import (
    CANCEL_AFTER_PATTERN,
    GenerateAccepted,
    GenerateRequest,
    IdempotencyKey,
    cancel_after_seconds,
)
from core.web import model_response
from core.web_errors import error_responses, invalid
from gateway import webhook_targets
from gateway.deps import GatewayDep
from gateway.settings import GatewaySettings
from gateway.urls import status_url

router = APIRouter(tags=["generation"])

IdempotencyKeyHeader = Annotated[
    IdempotencyKey | None,
    Header(
        alias="Idempotency-Key",
        description="1-255 printable ASCII characters. The same key and body from the same "
        "caller returns the same job; the same key with another body is a 409.",
    ),
]

CancelAfterHeader = Annotated[
    str | None,
    Header(
        alias="Cancel-After",
        pattern=CANCEL_AFTER_PATTERN,
        description="A deadline, as Replicate takes it: `30s`, `5m`, `1h30m` or bare seconds "
        "(up to 999h; less than 5 s counts as 5 s, Replicate's minimum). A job not finished "
        "by then is canceled (`cancel_reason`: `deadline`), its prediction too.",
    ),
]


def deadline(cancel_after: str | None) -> datetime | None:
    if cancel_after is None:
        return None
    try:
        seconds = cancel_after_seconds(cancel_after)
    except ValueError as exc:
        raise invalid(("header", "Cancel-After"), str(exc), value=cancel_after) from None
    return datetime.now(UTC) + timedelta(seconds=seconds)


async def check_webhook(url: str, settings: GatewaySettings) -> None:
    """422 for a webhook that may not be called (gateway.webhook_targets), 503 if its host's
    DNS did not answer (the URL may well be fine: try again)."""
    try:
        await webhook_targets.check(
            url,
            allow_private=settings.gateway_webhook_allow_private,
            timeout_seconds=settings.gateway_webhook_resolve_timeout_seconds,
        )
    except webhook_targets.WebhookUrlRejected as exc:
        raise invalid(("body", "webhook"), f"Webhook refused: {exc}", value=url) from None
    except webhook_targets.ResolutionUnavailable:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="The webhook's host could not be resolved just now; try again shortly",
            headers={"Retry-After": "5"},
        ) from None


@router.post(
    "/generate",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=GenerateAccepted,
    summary="Queue a media generation job",
    responses=error_responses(
        (*AUTH_ERRORS, 413, 503),
        {
            409: "Idempotency-Key reused with another body",
            422: "Invalid prompt, model, params, webhook or Idempotency-Key",
            503: "The database, or the webhook host's DNS, is unavailable: try again shortly",
        },
    ),
)
async def generate(
    body: GenerateRequest,
    request: Request,
    user: CurrentUser,
    gateway: GatewayDep,
    idempotency_key: IdempotencyKeyHeader = None,
    cancel_after: CancelAfterHeader = None,
) -> Response:
    settings = gateway.settings
    model = settings.gateway_default_model if body.model is None else body.model
    if model not in settings.allowed_models:
        allowed = ", ".join(sorted(settings.allowed_models))
        raise invalid(("body", "model"), f"Unknown model; allowed: {allowed}", value=model)
    if body.webhook is not None:
        await check_webhook(body.webhook, settings)
    job = jobs.new_job(
        owner_id=user.id,
        request=body,
        model=model,
        idempotency_key=idempotency_key,
        deadline_at=deadline(cancel_after),
    )
    try:
        if await gateway.intake.submit(job):
            accepted = jobs.Accepted.of_new(job)
        else:  # the Idempotency-Key names an earlier job
            async with gateway.db.session() as session:
                accepted = await jobs.replayed(session, job)
    except jobs.IdempotencyConflict:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail="Idempotency-Key was already used with a different request body",
        ) from None
    # The job is committed: from here on a 202 is a promise, kept by the outbox relay.
    url = status_url(request, accepted.job_id)
    headers = {"Location": url}
    if accepted.created:
        gateway.relay.accepted(accepted.job_id)
    else:
        headers["Idempotent-Replayed"] = "true"
    body_out = GenerateAccepted(job_id=accepted.job_id, status=accepted.status, status_url=url)
    return model_response(body_out, status.HTTP_202_ACCEPTED, headers=headers)
