"""The two actors: thin wrappers around steps.advance, declared on the worker's broker."""

from __future__ import annotations

import uuid

import dramatiq
from dramatiq.middleware import CurrentMessage

from core.amqp import AmqpPublisher
from core.logging import job_id_var
from core.messaging import (
    CANCEL_ACTOR,
    GENERATE_ACTOR,
    GENERATION_QUEUE,
    POLL_ACTOR,
    POLL_QUEUE,
    AsyncPublishingBroker,
    poll_message,
)
from generation_worker.resources import WorkerResources
from generation_worker.steps import Done, Poll, RetryLater, advance, cancel_prediction


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
        await _step(resources, broker.publisher, job_id, polls=0, is_poll=False)

    @dramatiq.actor(
        actor_name=POLL_ACTOR,
        queue_name=POLL_QUEUE,
        broker=broker,
        max_retries=max_retries,
    )
    async def poll_generation(job_id: str, polls: int) -> None:
        await _step(resources, broker.publisher, job_id, polls=polls, is_poll=True)

    @dramatiq.actor(
        actor_name=CANCEL_ACTOR,
        queue_name=POLL_QUEUE,
        broker=broker,
        max_retries=settings.retry_max_retries,
    )
    async def cancel_job_prediction(job_id: str) -> None:
        token = job_id_var.set(job_id)
        try:
            await cancel_prediction(await resources.context(), uuid.UUID(job_id))
        finally:
            job_id_var.reset(token)


async def _step(
    resources: WorkerResources,
    publisher: AmqpPublisher,
    job_id: str,
    *,
    polls: int,
    is_poll: bool,
) -> None:
    token = job_id_var.set(job_id)
    try:
        message = CurrentMessage.get_current_message()
        retries = int(message.options.get("retries", 0)) if message is not None else 0
        ctx = await resources.context()
        outcome = await advance(
            ctx, uuid.UUID(job_id), is_retry=retries > 0, polls=polls, is_poll=is_poll
        )
        match outcome:
            case Done():
                return
            case Poll(delay_seconds=delay):
                await publisher.publish(poll_message(job_id, polls + 1), delay_ms=int(delay * 1000))
            case RetryLater(delay_seconds=delay):
                # Retries re-enqueues this message with our delay (backoff or Retry-After).
                raise dramatiq.Retry(delay=int(delay * 1000))
    finally:
        job_id_var.reset(token)
