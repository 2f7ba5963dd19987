"""The actors: thin wrappers around steps.advance, declared on the worker's broker."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage
from pydantic import ValidationError

from core import jobs, tracing
from core.amqp import AmqpPublisher
from core.logging import job_id_var
from core.messaging import (
    CANCEL_ACTOR,
    GENERATE_ACTOR,
    GENERATION_QUEUE,
    POLL_ACTOR,
    POLL_QUEUE,
    WEBHOOK_ACTOR,
    AsyncPublishingBroker,
    poll_message,
)
from core.replicate import Prediction
from generation_worker.resources import WorkerContext, WorkerResources
from generation_worker.steps import Done, Poll, RetryLater, advance, cancel_prediction

log = logging.getLogger(__name__)


def declare_actors(broker: AsyncPublishingBroker, resources: WorkerResources) -> None:
    settings = resources.settings
    # The job's attempt budget (GENERATION_MAX_ATTEMPTS) decides failure; Dramatiq's retries
    # are only the backstop for faults that keep the job row itself unreachable (a database
    # outage).
    max_retries = settings.retry_max_retries + settings.generation_max_attempts

    @dramatiq.actor(
        actor_name=GENERATE_ACTOR,
        queue_name=GENERATION_QUEUE,
        broker=broker,
        max_retries=max_retries,
    )
    async def generate_media(job_id: str) -> None:
        await _step(resources, broker.publisher, GENERATE_ACTOR, job_id, polls=0, is_poll=False)

    @dramatiq.actor(
        actor_name=POLL_ACTOR,
        queue_name=POLL_QUEUE,
        broker=broker,
        max_retries=max_retries,
    )
    async def poll_generation(job_id: str, polls: int) -> None:
        await _step(resources, broker.publisher, POLL_ACTOR, job_id, polls=polls, is_poll=True)

    @dramatiq.actor(
        actor_name=CANCEL_ACTOR,
        queue_name=POLL_QUEUE,
        broker=broker,
        max_retries=settings.retry_max_retries,
    )
    async def cancel_job_prediction(job_id: str) -> None:
        token = job_id_var.set(job_id)
        try:
            ctx = await resources.context()
            async with _in_job_trace(ctx, CANCEL_ACTOR, job_id):
                await cancel_prediction(ctx, uuid.UUID(job_id))
        finally:
            job_id_var.reset(token)

    @dramatiq.actor(
        actor_name=WEBHOOK_ACTOR,
        queue_name=POLL_QUEUE,
        broker=broker,
        max_retries=max_retries,
    )
    async def prediction_webhook(job_id: str, prediction: dict[str, Any]) -> None:
        try:
            delivered = Prediction.model_validate(prediction)
        except ValidationError as exc:  # the gateway checked it: a bug, not worth a retry
            log.warning("dropping an unreadable webhook: %s", exc, extra={"job_id": job_id})
            return
        await _step(
            resources,
            broker.publisher,
            WEBHOOK_ACTOR,
            job_id,
            polls=0,
            is_poll=True,
            delivered=delivered,
        )


@contextlib.asynccontextmanager
async def _in_job_trace(ctx: WorkerContext, actor: str, job_id: str) -> AsyncIterator[None]:
    """With tracing on, the step's span in its job's trace: from the message's options, or,
    for messages sent from other traces (Replicate's webhooks, cancels), from the job's row,
    one indexed read. Off: nothing at all."""
    message = CurrentMessage.get_current_message()
    options = None if message is None else message.options
    stored = None
    if tracing.needs_stored_context(options):
        with tracing.untraced():
            stored = await ctx.jobs(jobs.trace_parent, uuid.UUID(job_id))
    with tracing.job_step(actor, job_id, options, stored):
        yield


async def _step(
    resources: WorkerResources,
    publisher: AmqpPublisher,
    actor: str,
    job_id: str,
    *,
    polls: int,
    is_poll: bool,
    delivered: Prediction | None = None,
) -> None:
    """One step of a job. A webhook's prediction (`delivered`) is taken like a poll's answer,
    but schedules no poll: the job's own poll chain goes on (as the fallback); a retry of a
    webhook's step looks at the prediction again, as a poll's retry does."""
    token = job_id_var.set(job_id)
    try:
        message = CurrentMessage.get_current_message()
        retries = int(message.options.get("retries", 0)) if message is not None else 0
        ctx = await resources.context()
        async with _in_job_trace(ctx, actor, job_id):
            outcome = await advance(
                ctx,
                uuid.UUID(job_id),
                is_retry=retries > 0,
                polls=polls,
                is_poll=is_poll,
                delivered=None if retries > 0 else delivered,
            )
            match outcome:
                case Done():
                    return
                case Poll() if delivered is not None:
                    return
                case Poll(delay_seconds=delay):
                    poll = poll_message(job_id, polls + 1)
                    tracing.inject(poll.options)  # the next poll continues the job's trace
                    await publisher.publish(poll, delay_ms=int(delay * 1000))
                case RetryLater(delay_seconds=delay):
                    # Retries re-enqueues this message with our delay (backoff or
                    # Retry-After), its options (and so its trace context) unchanged.
                    raise dramatiq.Retry(delay=int(delay * 1000))
    finally:
        job_id_var.reset(token)
