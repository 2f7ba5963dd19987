"""Caller webhooks: the signing secret (and its rotation), and what was sent for a job."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi import APIRouter, Response

from core import webhook_deliveries
from core.auth import AUTH_ERRORS, CurrentUser
from core.schemas.webhooks import WebhookDeliveryList, WebhookSecretPublic
from core.web import SessionDep, model_response
from core.web_errors import error_responses
from core.webhooks import generate_secret
from gateway.deps import GatewayDep
from gateway.routes.jobs import NO_JOB, job_not_found

router = APIRouter(tags=["webhooks"])

# A secret is not for caches, shared or private.
NO_STORE = {"Cache-Control": "no-store"}


@router.get(
    "/webhooks/default/secret",
    response_model=WebhookSecretPublic,
    summary="Your webhook signing secret (made on first use)",
    responses=error_responses((*AUTH_ERRORS, 503)),
)
async def get_secret(user: CurrentUser, session: SessionDep) -> Response:
    key = await webhook_deliveries.secret(session, user.id, generate_secret())
    return model_response(WebhookSecretPublic(key=key), headers=NO_STORE)


@router.post(
    "/webhooks/default/secret/rotate",
    response_model=WebhookSecretPublic,
    summary="Replace your webhook signing secret; the old one keeps signing for a grace period",
    description="Deliveries carry a signature with the new key and, for "
    "GATEWAY_WEBHOOK_ROTATION_GRACE_SECONDS (a day by default), one with the key it replaced, "
    "space-separated in `webhook-signature`: switch your receiver to the new key within that "
    "time. Rotating again within it drops the oldest key.",
    responses=error_responses((*AUTH_ERRORS, 503)),
)
async def rotate_secret(user: CurrentUser, session: SessionDep, gateway: GatewayDep) -> Response:
    grace = timedelta(seconds=gateway.settings.gateway_webhook_rotation_grace_seconds)
    key = await webhook_deliveries.rotate_secret(session, user.id, generate_secret(), grace)
    return model_response(WebhookSecretPublic(key=key), headers=NO_STORE)


@router.get(
    "/jobs/{job_id}/webhooks",
    response_model=WebhookDeliveryList,
    summary="The webhook deliveries of a job, with every attempt",
    responses=error_responses((*AUTH_ERRORS, 422, 503), NO_JOB),
)
async def get_job_webhooks(
    job_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> WebhookDeliveryList:
    deliveries = await webhook_deliveries.for_job(session, job_id, user.id)
    if deliveries is None:
        raise job_not_found(job_id)
    return WebhookDeliveryList(items=deliveries)
