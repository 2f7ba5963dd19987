from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request, Response, status

from core.auth import AUTH_ERRORS, CurrentUser
from core.messaging import generate_message
from core.schemas.generation import GenerateAccepted, GenerateRequest, IdempotencyKey
from core.web import SessionDep
from core.web_errors import error_responses, invalid
from gateway.deps import PublisherDep, SettingsDep
from gateway.jobs import IdempotencyConflict, create_job, mark_enqueued

log = logging.getLogger(__name__)
router = APIRouter(tags=["generation"])

IdempotencyKeyHeader = Annotated[
    IdempotencyKey | None,
    Header(
        alias="Idempotency-Key",
        description="1-255 printable ASCII characters. The same key and body from the same "
        "caller returns the same job; the same key with another body is a 409.",
    ),
]


@router.post(
    "/generate",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=GenerateAccepted,
    summary="Queue a media generation job",
    responses=error_responses(
        (*AUTH_ERRORS, 413, 503),
        {
            409: "Idempotency-Key reused with another body",
            422: "Invalid prompt, model, params or Idempotency-Key",
        },
    ),
)
async def generate(
    body: GenerateRequest,
    request: Request,
    response: Response,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    publisher: PublisherDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> GenerateAccepted:
    model = settings.gateway_default_model if body.model is None else body.model
    if model not in settings.allowed_models:
        allowed = ", ".join(sorted(settings.allowed_models))
        raise invalid(("body", "model"), f"Unknown model; allowed: {allowed}", value=model)
    try:
        accepted = await create_job(
            session=session,
            owner_id=user.id,
            request=body,
            model=model,
            idempotency_key=idempotency_key,
        )
    except IdempotencyConflict:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail="Idempotency-Key was already used with a different request body",
        ) from None
    # The job is committed: from here on a 202 is a promise. If the publish fails, the sweeper
    # publishes the job later, so the broker's state never decides the answer.
    if accepted.created:
        try:
            await publisher.send(
                generate_message(str(accepted.job_id)),
                timeout=settings.gateway_publish_timeout_seconds,
            )
        except Exception as exc:
            log.warning(
                "publish failed; the sweeper will retry",
                extra={"job_id": str(accepted.job_id), "error": exc.__class__.__name__},
            )
        else:
            await mark_enqueued(
                session=session, job_ids=[accepted.job_id], detail="published by the gateway"
            )
    else:
        response.headers["Idempotent-Replayed"] = "true"
    status_url = str(request.url_for("get_status", job_id=accepted.job_id))
    response.headers["Location"] = status_url
    return GenerateAccepted(job_id=accepted.job_id, status=accepted.status, status_url=status_url)
