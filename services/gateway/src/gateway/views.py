"""How the gateway shows a job: GET /status, the answer to a cancel, webhook bodies, and the
entries of GET /jobs."""

from __future__ import annotations

from core import jobs
from core.schemas.generation import JobPublic, JobStatus, JobSummary, MediaPublic
from gateway.urls import media_url, status_url


def media_public(base_url: str, job: jobs.JobRow, media: list[jobs.MediaFile]) -> list[MediaPublic]:
    return [
        MediaPublic(
            index=m.index,
            url=media_url(base_url, job.id, m.index),
            content_type=m.content_type,
            size_bytes=m.size_bytes,
            sha256=m.sha256,
            expired=m.expired,
        )
        for m in media
    ]


def job_public(
    base_url: str,
    job: jobs.JobRow,
    media: list[jobs.MediaFile],
    queue_position: int | None = None,
) -> JobPublic:
    """The job as GET /status shows it (and webhooks send it), its URLs on `base_url`."""
    return JobPublic(
        id=job.id,
        status=job.status,
        prompt=job.prompt,
        model=job.model,
        params=job.params,
        attempts=job.attempts,
        last_error=job.last_error,
        created_at=job.created_at,
        updated_at=job.updated_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        media=media_public(base_url, job, media),
        priority=job.priority,
        deadline_at=job.deadline_at,
        cancel_reason=job.cancel_reason,
        queue_position=queue_position if job.status is JobStatus.queued else None,
        logs=job.logs if job.status is JobStatus.running else None,
        progress=job.progress if job.status is JobStatus.running else None,
        retries=job.retries,
    )


def job_summary(base_url: str, job: jobs.JobRow, media: list[jobs.MediaFile]) -> JobSummary:
    """The job as GET /jobs lists it."""
    return JobSummary(
        id=job.id,
        status=job.status,
        prompt=job.prompt,
        model=job.model,
        attempts=job.attempts,
        created_at=job.created_at,
        finished_at=job.finished_at,
        status_url=status_url(base_url, job.id),
        priority=job.priority,
        last_error=job.last_error,
        media=media_public(base_url, job, media),
    )
