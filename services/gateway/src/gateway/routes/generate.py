from __future__ import annotations

import asyncio
import math
import re
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Header, HTTPException, Request, Response, status
from starlette.types import Receive

from core import jobs
from core.auth import AUTH_ERRORS, CurrentUser
from core.schemas.generation import (
    CANCEL_AFTER_PATTERN,
    GenerateAccepted,
    GenerateRequest,
    IdempotencyKey,
    JobPublic,
    cancel_after_seconds,
)
from core.tracing import current_traceparent
from core.web import model_response
from core.web_errors import error_responses, invalid
from gateway import webhook_targets
from gateway.deps import Gateway, GatewayDep
from gateway.job_changes import Watch
from gateway.routes.jobs import to_public
from gateway.settings import GatewaySettings
from gateway.urls import status_url

T = TypeVar("T")

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


PreferHeader = Annotated[
    str | None,
    Header(
        alias="Prefer",
        description="`wait` or `wait=N` (N from 1 to 60): hold the request until the job "
        "finished, for up to 60 or N seconds. Finished in time: 200 with the job as GET "
        "/status shows it; else the usual 202. Both echo `Preference-Applied`. Other "
        "preferences are ignored (RFC 7240).",
    ),
]
# Replicate's syntax, held to its documented 1..60 (its published pattern also admits 61-99).
_WAIT = re.compile(r"wait(?:=([1-9]|[1-5][0-9]|60))?")
WAIT_MAX_SECONDS = 60
PREFERENCE_APPLIED = {
    "Preference-Applied": {
        "description": "The `wait` preference as honoured, when one was sent",
        "schema": {"type": "string"},
    }
}


@dataclass(frozen=True, slots=True)
class Wait:
    seconds: int
    applied: str  # as the caller wrote it, as Replicate echoes it


def preferred_wait(prefer: str | None) -> Wait | None:
    """The `wait` preference among the comma-separated ones of a Prefer header, if any."""
    for preference in (prefer or "").split(","):
        if match := _WAIT.fullmatch(preference.strip()):
            seconds = WAIT_MAX_SECONDS if match[1] is None else int(match[1])
            return Wait(seconds, match[0])
    return None


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


def rate_limited(limit: int, admitted: jobs.Admission) -> HTTPException:
    wait = max(1, math.ceil(admitted.resets_in_seconds))
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        detail=f"Rate limit of {limit} creates per minute reached; try again in {wait} s",
        headers={"Retry-After": str(wait)},
    )


@router.post(
    "/generate",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=GenerateAccepted,
    summary="Queue a media generation job",
    responses={
        200: {
            "model": JobPublic,
            "description": "With `Prefer: wait`: the job finished in time, as GET /status shows it",
            "headers": PREFERENCE_APPLIED,
        },
        202: {"headers": PREFERENCE_APPLIED},
        **error_responses(
            (*AUTH_ERRORS, 413, 503),
            {
                409: "Idempotency-Key reused with another body",
                422: "Invalid prompt, model, params, webhook, Idempotency-Key or Cancel-After",
                429: "Over GATEWAY_RATE_LIMIT_PER_MINUTE creates this minute: try again after "
                "`Retry-After` seconds",
                503: "The database, or the webhook host's DNS, is unavailable: try again shortly",
            },
        ),
    },
)
async def generate(
    body: GenerateRequest,
    request: Request,
    user: CurrentUser,
    gateway: GatewayDep,
    idempotency_key: IdempotencyKeyHeader = None,
    cancel_after: CancelAfterHeader = None,
    prefer: PreferHeader = None,
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
        trace_parent=current_traceparent(),
    )
    wait = preferred_wait(prefer)
    # Watched from before the INSERT: no change of the new job can slip by unnoticed.
    watch = gateway.changes.watch(job.id) if wait else None
    try:
        try:
            admitted = await gateway.intake.submit(job)
            if admitted.limited:
                raise rate_limited(settings.gateway_rate_limit_per_minute, admitted)
            if admitted.stored:
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
        url = status_url(str(request.base_url), accepted.job_id)
        headers = {"Location": url}
        if accepted.created:
            gateway.relay.accepted(accepted.job_id, job.priority, job.trace_parent)
        else:
            headers["Idempotent-Replayed"] = "true"
        if wait is not None and watch is not None:
            headers["Preference-Applied"] = wait.applied
            if not accepted.created:
                watch.close()
                watch = gateway.changes.watch(accepted.job_id)
            finished = await _unless_disconnected(
                request.receive,
                _finished_within(gateway, watch, user.id, wait.seconds, queued=accepted.created),
            )
            if finished is not None:
                public = to_public(request, *finished)
                return model_response(public, status.HTTP_200_OK, headers=headers)
    finally:
        if watch is not None:
            watch.close()
    body_out = GenerateAccepted(job_id=accepted.job_id, status=accepted.status, status_url=url)
    return model_response(body_out, status.HTTP_202_ACCEPTED, headers=headers)


async def _finished_within(
    gateway: Gateway, watch: Watch, owner_id: uuid.UUID, seconds: float, *, queued: bool
) -> jobs.JobView | None:
    """The job, once terminal within `seconds`; None if it is not by then. It is read only
    when the listener says it changed (`queued`: it was just stored, no need to look first)."""
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    changed = not queued
    while True:
        if changed:
            watch.clear()
            async with gateway.db.session() as session:
                view = await jobs.get(session, watch.job_id, owner_id)
            if view is not None and view.job.status.is_terminal:
                return view
        if watch.closing:
            return None
        changed = await watch.wait(until - loop.time())
        if not changed:
            return None


async def _unless_disconnected(receive: Receive, work: Coroutine[Any, Any, T]) -> T | None:
    """What `work` returns, or None as soon as the client disconnects (`work` is then
    cancelled). The body was read already, so the next ASGI message is the disconnect."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    working = asyncio.ensure_future(work)
    watching = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait((working, watching), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (working, watching):
            task.cancel()
        await asyncio.gather(working, watching, return_exceptions=True)
    if working.cancelled() or not working.done():
        return None
    return working.result()
