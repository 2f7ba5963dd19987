"""GET /jobs/{job_id}/events: a job's changes as Server-Sent Events, live.

    event: status   the job as GET /status shows it; first, and after every change.
                    id: its newest history entry (so a reconnect resumes after it)
    event: change   one per history entry (job_events), id: the entry's id
    event: logs     while running, when logs or progress changed; no id (no history entry)

With Last-Event-ID the stream first sends the entries after that id, then the status, then
continues live; it ends after the status event that shows a terminal status (204 on a resume
when that was already seen, so EventSource stops reconnecting). Between events the request
holds no database connection and no task of its own: it sleeps until the process's listener
(gateway.job_changes) says the job changed, or until a keep-alive comment is due.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response, status

from core import jobs
from core.auth import CurrentUser
from core.schemas.generation import JobEventPublic, JobLogs, JobStatus
from core.web_errors import error_responses, is_database_unavailable
from gateway.deps import Gateway, GatewayDep
from gateway.job_changes import Watch
from gateway.routes.jobs import ERRORS, NO_JOB, job_not_found, to_public
from gateway.sse import KEEP_ALIVE, EventStreamResponse, sse_event

log = logging.getLogger(__name__)

router = APIRouter(tags=["jobs"])

LastEventIdHeader = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        pattern=r"^[0-9]{1,18}$",
        description="Resume: the id of the last event received (EventSource sends it when it "
        "reconnects). The history entries after it come first, then the stream goes on live.",
    ),
]

EXAMPLE = """event: status
id: 1
data: {"id":"6f0c...","status":"queued","queue_position":3,...}

event: change
id: 4
data: {"id":4,"kind":"state","from_status":"queued","to_status":"running",...}

event: status
id: 4
data: {"id":"6f0c...","status":"running",...}

event: logs
data: {"logs":"Using seed: 42\\n 50%|█████     | 2/4 ...","progress":0.5}

"""


@router.get(
    "/jobs/{job_id}/events",
    # No media type of its own: the 200 is documented as text/event-stream below, and the
    # errors stay application/json (FastAPI gives them the route's response class's type).
    response_class=Response,
    summary="Follow a job live (Server-Sent Events) until it finishes",
    responses={
        200: {
            "description": "`status` (the job as GET /status shows it: first and after each "
            "change), `change` (one per history entry) and `logs` (while running) events; "
            "ends after the terminal status",
            "content": {"text/event-stream": {"schema": {"type": "string"}, "example": EXAMPLE}},
        },
        204: {"description": "Resumed after the last event of a finished job: nothing more"},
        **error_responses(ERRORS, NO_JOB),
    },
)
async def job_events(
    job_id: uuid.UUID,
    request: Request,
    user: CurrentUser,
    gateway: GatewayDep,
    last_event_id: LastEventIdHeader = None,
) -> Response:
    resume_after = None if last_event_id is None else int(last_event_id)
    # Watch before the first read, so that a change committed meanwhile wakes the stream.
    watch = gateway.changes.watch(job_id)
    try:
        async with gateway.db.session() as session:
            first = await jobs.watched(session, job_id, user.id, resume_after)
    except BaseException:
        watch.close()
        raise
    if first is None:
        watch.close()
        raise job_not_found(job_id)
    if resume_after is not None and not first.events and first.view.job.status.is_terminal:
        watch.close()
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    stream = _stream(request, gateway, watch, user.id, first)
    return EventStreamResponse(stream, on_close=watch.close)


async def _stream(
    request: Request, gateway: Gateway, watch: Watch, owner_id: uuid.UUID, first: jobs.Watched
) -> AsyncIterator[bytes]:
    keep_alive = gateway.settings.gateway_events_keepalive_seconds
    update: jobs.Watched | None = first
    after = first.last_event_id
    shown_logs: tuple[str | None, float | None] | None = None
    while True:
        if update is not None:
            job = update.view.job
            for event in update.events:
                change = JobEventPublic.model_validate(event, from_attributes=True)
                yield sse_event("change", change.model_dump_json(), event.id)
            if shown_logs is None or update.events:
                public = to_public(request, *update.view)
                yield sse_event("status", public.model_dump_json(), update.last_event_id)
                shown_logs = (job.logs, job.progress)
            elif job.status is JobStatus.running and (job.logs, job.progress) != shown_logs:
                logs = JobLogs(logs=job.logs, progress=job.progress)
                yield sse_event("logs", logs.model_dump_json())
                shown_logs = (job.logs, job.progress)
            if job.status.is_terminal:
                return
            after = update.last_event_id
        while not await watch.wait(keep_alive):
            yield KEEP_ALIVE
        if watch.closing:
            return  # the process is stopping: the client resumes with Last-Event-ID
        watch.clear()
        try:
            async with gateway.db.session() as session:
                update = await jobs.watched(session, watch.job_id, owner_id, after)
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            # Keep the stream: the listener wakes every stream when the database is back.
            log.warning("event stream cannot read its job: %s", type(exc).__name__)
            update = None
            continue
        if update is None:
            return  # the job is gone (deleted with its owner)
