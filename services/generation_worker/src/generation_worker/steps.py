"""The job state machine: each call moves one job one step and says what should happen next.

A step never waits for a prediction to finish: it returns Poll(delay) and the actor schedules
a delayed poll message, so a worker thread is held only for the milliseconds of real work and
one process keeps hundreds of predictions in flight. Every change of the job is one statement
of core.jobs (conditional, with its event).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dramatiq.common import compute_backoff

from core import jobs
from core.replicate import PermanentError, Prediction, PredictionFailed, TransientError
from core.schemas.generation import JobStatus
from core.storage import StorageUnavailable, media_key
from generation_worker.download import OutputRejected, download_image
from generation_worker.progress import progress_of
from generation_worker.resources import WorkerContext
from generation_worker.settings import WorkerSettings

log = logging.getLogger(__name__)

# A create whose answer was lost is looked for among predictions made since shortly before it.
CLOCK_SKEW = timedelta(minutes=2)

TRANSIENT = (TransientError, StorageUnavailable)
PERMANENT = (PermanentError, PredictionFailed, OutputRejected)


@dataclass(frozen=True, slots=True)
class Done:
    pass


@dataclass(frozen=True, slots=True)
class Poll:
    delay_seconds: float


@dataclass(frozen=True, slots=True)
class RetryLater:
    delay_seconds: float
    error: str


Outcome = Done | Poll | RetryLater


def describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def backoff_seconds(settings: WorkerSettings, attempt: int, retry_after: float | None) -> float:
    """dramatiq's own formula (min * 2**n with jitter, capped), never sooner than Retry-After."""
    _, delay_ms = compute_backoff(
        max(attempt - 1, 0),
        factor=settings.retry_min_backoff_ms,
        max_backoff=settings.retry_max_backoff_ms,
    )
    return max(delay_ms / 1000, retry_after or 0.0)


def poll_delay(settings: WorkerSettings, polls: int) -> float:
    base = settings.generation_poll_interval_seconds
    return float(min(base * 1.5**polls, settings.generation_poll_max_interval_seconds))


async def advance(
    ctx: WorkerContext, job_id: uuid.UUID, *, is_retry: bool, polls: int = 0, is_poll: bool = False
) -> Outcome:
    """One step: a job's first delivery or a retry begins an attempt; a poll looks again."""
    if is_poll and not is_retry:
        job = await ctx.jobs(jobs.load, job_id)
        if job is None or job.status.is_terminal:
            return await _finished(ctx, job)
        attempt, created_since = job.attempts, job.create_requested_at
    else:
        begun = await ctx.jobs(jobs.begin_attempt, job_id)
        if begun is None:
            return await _finished(ctx, await ctx.jobs(jobs.load, job_id))
        job, attempt, created_since = begun.job, begun.number, begun.create_requested_before
    try:
        prediction = await _ensure_prediction(ctx, job, created_since)
        if prediction is None:
            return Done()
        if not prediction.is_terminal:
            await _record_progress(ctx, job, prediction)
            if datetime.now(UTC) - job.updated_at > jobs.TOUCH_EVERY:
                await ctx.jobs(jobs.touch, job_id)
            return Poll(poll_delay(ctx.settings, polls))
        if prediction.status != "succeeded":
            raise PredictionFailed(prediction)
        media = await _deliver(ctx, job, prediction)
        if not await ctx.jobs(jobs.mark_succeeded, job_id, media):
            log.info("job finished elsewhere before delivery", extra={"job_id": str(job_id)})
        return Done()
    except PERMANENT as exc:
        await ctx.jobs(jobs.mark_failed, job_id, describe(exc))
        log.info("job failed permanently: %s", describe(exc), extra={"job_id": str(job_id)})
        return Done()
    except TRANSIENT as exc:
        error = describe(exc)
        if attempt >= ctx.settings.generation_max_attempts:
            await ctx.jobs(jobs.mark_failed, job_id, f"gave up after {attempt} attempts: {error}")
            log.warning(
                "job failed after %d attempts: %s", attempt, error, extra={"job_id": str(job_id)}
            )
            return Done()
        await ctx.jobs(jobs.record_error, job_id, error, attempt)
        retry_after = exc.retry_after if isinstance(exc, TransientError) else None
        delay = backoff_seconds(ctx.settings, attempt, retry_after)
        log.info(
            "transient failure, retrying in %.2fs: %s",
            delay,
            error,
            extra={"job_id": str(job_id), "attempt": attempt},
        )
        return RetryLater(delay, error)


async def _record_progress(ctx: WorkerContext, job: jobs.JobRow, prediction: Prediction) -> None:
    """Show the running prediction's logs (their tail) and progress on the job; a poll of an
    unchanged prediction writes nothing."""
    logs = (prediction.logs or "")[-jobs.LOGS_MAX :] or None
    progress = progress_of(logs)
    if (logs, progress) != (job.logs, job.progress):
        await ctx.jobs(jobs.record_progress, job.id, logs, progress)


async def _finished(ctx: WorkerContext, job: jobs.JobRow | None) -> Outcome:
    """Nothing left to do (a redelivery, a late poll, or a job gone); a job canceled while its
    prediction ran gets that prediction canceled at Replicate."""
    if job is None:
        log.warning("job not found; dropping its message")
    elif job.status is JobStatus.canceled and job.prediction_id:
        await _cancel_quietly(ctx, job.prediction_id)
    return Done()


async def _ensure_prediction(
    ctx: WorkerContext, job: jobs.JobRow, created_since: datetime | None
) -> Prediction | None:
    """The job's prediction: the saved one, the one a lost create made, or a new one.

    A create is POSTed only when no earlier attempt can have made a prediction. Otherwise
    (`created_since` is when the first attempt that could have began) the predictions made since
    then are searched for this job's exact input first (the gateway gives each job its own seed
    unless the caller fixed one), skipping predictions another job already owns.
    """
    if job.prediction_id is not None:
        return await ctx.replicate.get_prediction(job.prediction_id)
    wanted = job.prediction_input
    if created_since is not None:
        async for candidate in ctx.replicate.list_predictions(
            created_after=created_since - CLOCK_SKEW
        ):
            if (
                candidate.input == wanted
                and candidate.model == job.model
                and candidate.id not in job.retired_prediction_ids  # an earlier run's
                and not await ctx.jobs(jobs.prediction_claimed, candidate.id)
            ):
                if await ctx.jobs(jobs.mark_running, job.id, candidate.id, "recovered"):
                    return candidate
                return None  # canceled meanwhile
    # CreateOutcomeUnknown propagates as transient: the next attempt searches before posting.
    prediction = await ctx.replicate.create_prediction(model=job.model, input=wanted)
    if not await ctx.jobs(jobs.mark_running, job.id, prediction.id, "created"):
        await _cancel_quietly(ctx, prediction.id)  # the job was canceled while we created it
        return None
    return prediction


async def _deliver(
    ctx: WorkerContext, job: jobs.JobRow, prediction: Prediction
) -> list[jobs.MediaFile]:
    urls = prediction.output_urls()
    if not urls:
        raise OutputRejected("the prediction succeeded but returned no output")

    async def one(index: int, url: str) -> jobs.MediaFile:
        image = await download_image(
            ctx.replicate,
            url,
            allowed_hosts=ctx.settings.allowed_output_hosts,
            max_bytes=ctx.settings.generation_max_output_bytes,
            timeout_seconds=ctx.settings.generation_download_timeout_seconds,
        )
        storage = await ctx.ready_storage()
        stored = await storage.put(
            media_key(job.id, index, image.extension), image.data, image.content_type
        )
        return jobs.MediaFile(
            index=index,
            storage_key=stored.key,
            content_type=stored.content_type,
            size_bytes=stored.size,
            sha256=stored.sha256,
            source_url=url,
        )

    return list(await asyncio.gather(*(one(i, url) for i, url in enumerate(urls))))


async def cancel_prediction(ctx: WorkerContext, job_id: uuid.UUID) -> None:
    """The job was canceled (by its caller or its deadline): cancel its prediction at
    Replicate now. A transient failure raises, so the message is retried."""
    job = await ctx.jobs(jobs.load, job_id)
    if job is None or job.status is not JobStatus.canceled or job.prediction_id is None:
        return  # not canceled after all (retried meanwhile), or nothing started yet
    try:
        await ctx.replicate.cancel_prediction(job.prediction_id)
    except PermanentError as exc:  # gone at Replicate, say: nothing left to cancel
        log.info("could not cancel prediction %s: %s", job.prediction_id, describe(exc))


async def _cancel_quietly(ctx: WorkerContext, prediction_id: str) -> None:
    try:
        await ctx.replicate.cancel_prediction(prediction_id)
    except Exception as exc:  # best effort: the job is already canceled on our side
        log.info("could not cancel prediction %s: %s", prediction_id, describe(exc))
