"""The job state machine: each call moves one job one step and says what should happen next.

A step never waits for a prediction to finish: it returns Poll(delay) and the actor schedules
a delayed poll message, so a worker thread is held only for the milliseconds of real work and
one process keeps hundreds of predictions in flight. Every change of the job is one statement
of core.jobs (conditional, with its event).

With Replicate webhooks on (REPLICATE_WEBHOOK_BASE_URL), a webhook's prediction goes through
the same step as a poll's answer; polls go on, rarely, as the fallback for a webhook that
never comes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dramatiq.common import compute_backoff

from core import jobs
from core.replicate import (
    DownloadTooLarge,
    PermanentError,
    Prediction,
    PredictionFailed,
    TransientError,
)
from core.schemas.generation import JobStatus
from core.storage import StorageUnavailable, media_key
from core.webhooks import replicate_webhook_url
from generation_worker import metrics
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
    if settings.replicate_webhook_base_url is not None:
        return settings.generation_webhook_poll_interval_seconds  # only a fallback then
    base = settings.generation_poll_interval_seconds
    return float(min(base * 1.5**polls, settings.generation_poll_max_interval_seconds))


async def advance(
    ctx: WorkerContext,
    job_id: uuid.UUID,
    *,
    is_retry: bool,
    polls: int = 0,
    is_poll: bool = False,
    delivered: Prediction | None = None,
) -> Outcome:
    """One step: a job's first delivery or a retry begins an attempt; a poll looks again, or
    takes the prediction a webhook `delivered` (with is_poll) instead of fetching it."""
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
        if attempt == 1 and job.retries == 0 and job.started_at is not None:
            metrics.QUEUE_WAIT.observe((job.started_at - job.created_at).total_seconds())
    try:
        prediction = await _ensure_prediction(ctx, job, created_since, delivered)
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
        if await ctx.jobs(jobs.mark_succeeded, job_id, media):
            _count_finished(job, JobStatus.succeeded, "ok")
        else:
            log.info("job finished elsewhere before delivery", extra={"job_id": str(job_id)})
        return Done()
    except PERMANENT as exc:
        if await ctx.jobs(jobs.mark_failed, job_id, describe(exc)):
            _count_finished(job, JobStatus.failed, _failure_reason(exc))
        log.info("job failed permanently: %s", describe(exc), extra={"job_id": str(job_id)})
        return Done()
    except TRANSIENT as exc:
        error = describe(exc)
        if attempt >= ctx.settings.generation_max_attempts:
            reason = f"gave up after {attempt} attempts: {error}"
            if await ctx.jobs(jobs.mark_failed, job_id, reason):
                _count_finished(job, JobStatus.failed, "gave_up")
            log.warning(
                "job failed after %d attempts: %s", attempt, error, extra={"job_id": str(job_id)}
            )
            return Done()
        metrics.RETRIES.labels(type(exc).__name__).inc()
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


def _failure_reason(exc: Exception) -> str:
    """A bounded label for a permanent failure (most specific class first)."""
    if isinstance(exc, PredictionFailed):
        return "prediction_failed"
    if isinstance(exc, OutputRejected | DownloadTooLarge):
        return "output_rejected"
    return "replicate_refused"  # a 4xx from Replicate: bad input, auth, unknown model


def _count_finished(job: jobs.JobRow, status: JobStatus, reason: str) -> None:
    metrics.JOBS_FINISHED.labels(status.value, reason).inc()
    if job.started_at is not None:
        elapsed = (datetime.now(UTC) - job.started_at).total_seconds()
        metrics.RUN_TIME.labels(status.value).observe(elapsed)


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
    ctx: WorkerContext,
    job: jobs.JobRow,
    created_since: datetime | None,
    delivered: Prediction | None = None,
) -> Prediction | None:
    """The job's prediction: the one a webhook delivered, the saved one, the one a lost create
    made, or a new one.

    A create is POSTed only when no earlier attempt can have made a prediction. Otherwise
    (`created_since` is when the first attempt that could have began) the predictions made since
    then are searched for this job's exact input first (the gateway gives each job its own seed
    unless the caller fixed one), skipping predictions another job already owns.
    """
    if delivered is not None:
        return await _delivered_prediction(ctx, job, delivered)
    if job.prediction_id is not None:
        return await ctx.replicate.get_prediction(job.prediction_id)
    wanted = job.prediction_input
    if created_since is not None:
        async for candidate in ctx.replicate.list_predictions(
            created_after=created_since - CLOCK_SKEW
        ):
            if candidate.input != wanted or candidate.model != job.model:
                continue
            if candidate.id in job.retired_prediction_ids:  # an earlier run's (retried job)
                continue
            if not await ctx.jobs(jobs.prediction_claimed, candidate.id):
                return await _run_with(ctx, job, candidate, RECOVERED)
            if await _owns(ctx, job.id, candidate.id):  # its webhook adopted it already
                return candidate
    # CreateOutcomeUnknown propagates as transient: the next attempt searches before posting.
    prediction = await ctx.replicate.create_prediction(
        model=job.model, input=wanted, **_webhook(ctx.settings, job.id)
    )
    return await _run_with(ctx, job, prediction, CREATED)


CREATED, RECOVERED, RECOVERED_BY_WEBHOOK = "created", "recovered", "recovered by webhook"


def _webhook(settings: WorkerSettings, job_id: uuid.UUID) -> dict[str, Any]:
    """The create's `webhook` and `webhook_events_filter`: the URL names the job, so even a
    create whose answer is lost reaches it (see _delivered_prediction)."""
    if settings.replicate_webhook_base_url is None:
        return {}
    return {
        "webhook": replicate_webhook_url(settings.replicate_webhook_base_url, job_id),
        "webhook_events_filter": settings.webhook_events,
    }


async def _delivered_prediction(
    ctx: WorkerContext, job: jobs.JobRow, delivered: Prediction
) -> Prediction | None:
    """A webhook's prediction, if it is the job's. A job with none yet adopts it: its webhook
    URL names this job, so it comes from this job's create whose answer was lost (or is still
    on its way), unless another job owns it already, or it is an earlier run's (the job was
    retried since)."""
    if delivered.id == job.prediction_id:
        return delivered
    if job.prediction_id is None and delivered.id not in job.retired_prediction_ids:
        if not await ctx.jobs(jobs.prediction_claimed, delivered.id):
            return await _run_with(ctx, job, delivered, RECOVERED_BY_WEBHOOK)
        if await _owns(ctx, job.id, delivered.id):  # this job's create answered meanwhile
            return delivered
    log.info(
        "webhook for prediction %s ignored: not this job's",
        delivered.id,
        extra={"job_id": str(job.id)},
    )
    return None


async def _run_with(
    ctx: WorkerContext, job: jobs.JobRow, prediction: Prediction, how: str
) -> Prediction | None:
    """queued -> running with `prediction`. If that fails, the job was canceled meanwhile, or
    it got a prediction another way first (a create's answer and the webhook of that create
    race): go on with the job's own; None when there is nothing left to do."""
    if await ctx.jobs(jobs.mark_running, job.id, prediction.id, how):
        return prediction
    current = await ctx.jobs(jobs.load, job.id)
    own = current.prediction_id if current and current.status is JobStatus.running else None
    if own == prediction.id:
        return prediction
    if how == CREATED:  # ours is not needed: the job was canceled, or has another one
        await _cancel_quietly(ctx, prediction.id)
    return None if own is None else await ctx.replicate.get_prediction(own)


async def _owns(ctx: WorkerContext, job_id: uuid.UUID, prediction_id: str) -> bool:
    current = await ctx.jobs(jobs.load, job_id)
    return current is not None and current.prediction_id == prediction_id


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
