from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError

from core.auth import AUTH_RESPONSES, CurrentUser
from core.messaging import generate_message
from core.schemas.errors import ErrorResponse
from core.schemas.generation import GenerateAccepted, GenerateRequest
from core.web import SessionDep
from gateway.deps import PublisherDep, SettingsDep
from gateway.jobs import IdempotencyConflict, create_job, mark_enqueued

log = logging.getLogger(__name__)
router = APIRouter(tags=["generation"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Same key and body from the same caller returns the same job",
    ),
]


@router.post(
    "/generate",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=GenerateAccepted,
    summary="Queue a media generation job",
    responses={
        **AUTH_RESPONSES,
        409: {"model": ErrorResponse, "description": "Idempotency-Key reused with another body"},
        422: {"model": ErrorResponse, "description": "Invalid prompt, model or params"},
    },
)
async def generate(
    body: GenerateRequest,
    request: Request,
    response: Response,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    publisher: PublisherDep,
    idempotency_key: IdempotencyKey = None,
) -> GenerateAccepted:
    model = body.model or settings.gateway_default_model
    if model not in settings.allowed_models:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("body", "model"),
                    "msg": "Unknown model; allowed: " + ", ".join(sorted(settings.allowed_models)),
                    "input": model,
                }
            ]
        )
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
