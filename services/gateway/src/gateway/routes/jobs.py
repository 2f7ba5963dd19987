from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status

from core import jobs
from core.amqp import PublishFailed
from core.auth import AUTH_ERRORS, CurrentUser
from core.messaging import cancel_message
from core.pagination import InvalidCursor
from core.schemas.generation import JobPage, JobPublic, JobStatus
from core.web import SessionDep
from core.web_errors import error_responses, invalid
from gateway.deps import Gateway, GatewayDep
from gateway.views import job_public, job_summary

log = logging.getLogger(__name__)
router = APIRouter(tags=["jobs"])

ERRORS = (*AUTH_ERRORS, 422, 503)
NO_JOB = {404: "No such job for this caller"}


def job_not_found(job_id: uuid.UUID) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"Job {job_id} not found")


def to_public(
    request: Request,
    job: jobs.JobRow,
    media: list[jobs.MediaFile],
    queue_position: int | None = None,
) -> JobPublic:
    """The job as GET /status shows it (`to_public(request, *view)` for a jobs.JobView)."""
    return job_public(str(request.base_url), job, media, queue_position)


@router.get(
    "/status/{job_id}",
    response_model=JobPublic,
    summary="A job's status, attempts, last error and, once succeeded, its media",
    responses=error_responses(ERRORS, NO_JOB),
)
async def get_status(
    job_id: uuid.UUID, request: Request, user: CurrentUser, session: SessionDep
) -> JobPublic:
    found = await jobs.get(session, job_id, user.id)
    if found is None:
        raise job_not_found(job_id)
    return to_public(request, *found)


@router.get(
    "/jobs",
    response_model=JobPage,
    summary="Your jobs, newest first",
    responses=error_responses(ERRORS),
)
async def get_jobs(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> JobPage:
    try:
        page = await jobs.list_page(
            session, owner_id=user.id, status=status_filter, limit=limit, cursor=cursor
        )
    except InvalidCursor as exc:
        raise invalid(("query", "cursor"), str(exc), value=cursor) from None
    base_url = str(request.base_url)
    return JobPage(
        items=[job_summary(base_url, view.job, view.media) for view in page.items],
        next_cursor=page.next_cursor,
    )


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobPublic,
    summary="Cancel a queued or running job",
    responses=error_responses(ERRORS, {**NO_JOB, 409: "The job already finished"}),
)
async def cancel(
    job_id: uuid.UUID, request: Request, user: CurrentUser, gateway: GatewayDep
) -> JobPublic:
    async with gateway.db.session() as session:
        try:
            if not await jobs.cancel(session, job_id, user.id):
                raise job_not_found(job_id)
            gateway.webhooks.wake()  # its `completed` webhook, if it has one, goes out now
        except jobs.JobNotCancelable as exc:
            raise HTTPException(
                status.HTTP_409_CONFLICT, detail=f"Job {job_id} already {exc.status.value}"
            ) from None
        found = await jobs.get(session, job_id, user.id)
    if found is None:  # deleted with its owner in between
        raise job_not_found(job_id)
    if found[0].prediction_id is not None:
        await ask_worker_to_cancel(gateway, job_id)
    return to_public(request, *found)


async def ask_worker_to_cancel(gateway: Gateway, job_id: uuid.UUID) -> None:
    """Cancel the prediction at Replicate now; if RabbitMQ is away, the worker's next look at
    the job does it (the job itself is canceled already)."""
    try:
        await gateway.publisher.publish(cancel_message(str(job_id)))
    except PublishFailed as exc:
        log.warning("cancel message for %s not published: %s", job_id, exc)


@router.post(
    "/jobs/{job_id}/retry",
    response_model=JobPublic,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Queue a failed or canceled job again, with a new attempt budget",
    responses=error_responses(ERRORS, {**NO_JOB, 409: "The job is queued, running or succeeded"}),
)
async def retry(
    job_id: uuid.UUID, request: Request, user: CurrentUser, gateway: GatewayDep
) -> JobPublic:
    async with gateway.db.session() as session:
        try:
            priority = await jobs.retry(session, job_id, user.id)
        except jobs.JobNotRetryable as exc:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                detail=f"Job {job_id} is {exc.status.value}: only a failed or canceled job "
                "can be retried",
            ) from None
        if priority is None:
            raise job_not_found(job_id)
        found = await jobs.get(session, job_id, user.id)
    gateway.relay.accepted(job_id, priority)  # queued again: an outbox entry like a new job
    if found is None:
        raise job_not_found(job_id)
    return to_public(request, *found)
