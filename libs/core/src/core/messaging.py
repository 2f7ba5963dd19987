"""Dramatiq over RabbitMQ: the message contracts between services and the worker's broker.

Producers send by actor name and queue (the contracts below), so the gateway never imports the
worker's code, and never Dramatiq's broker either: it publishes Dramatiq-format messages with
core.amqp. The worker consumes with Dramatiq, and everything it publishes (polls, Dramatiq's
own retries and delayed messages) also goes through core.amqp on its event loop: no pika
connection publishes anywhere, so none idles into a missed heartbeat.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.common import dq_name, xq_name
from dramatiq.middleware import (
    AgeLimit,
    AsyncIO,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from core.amqp import AmqpPublisher
from core.schemas.generation import Priority
from core.settings import BrokerSettings
from core.tracing import TRACEPARENT

# --- contracts -----------------------------------------------------------------------------
# The gateway's outbox relay sends `generate_media(job_id)`; the generation worker defines the
# actors and sends itself `poll_generation(job_id, polls)`. The gateway hands each verified
# Replicate webhook to the worker as `prediction_webhook(job_id, prediction)`. Polls and
# webhooks have their own queue, so a running prediction is never looked at behind a backlog
# of new jobs.
GENERATION_QUEUE = "generation"
POLL_QUEUE = "generation_poll"
GENERATE_ACTOR = "generate_media"
POLL_ACTOR = "poll_generation"
CANCEL_ACTOR = "cancel_prediction"
WEBHOOK_ACTOR = "prediction_webhook"
QUEUES = (GENERATION_QUEUE, POLL_QUEUE)
# The generation queue is a RabbitMQ priority queue: a job's message carries its priority
# (core.schemas.generation.Priority.amqp), so a backlog of low jobs never delays a high one by
# more than the messages a worker already holds.
MAX_PRIORITY = max(p.amqp for p in Priority)


def build_message(
    *, queue_name: str, actor_name: str, args: tuple[Any, ...] = (), **options: Any
) -> dramatiq.Message[Any]:
    return dramatiq.Message(
        queue_name=queue_name, actor_name=actor_name, args=args, kwargs={}, options=options
    )


def generate_message(
    job_id: str, priority: Priority = Priority.normal, trace_parent: str | None = None
) -> dramatiq.Message[Any]:
    """Start a job: its first delivery, or a re-send of a job whose message was lost.
    `broker_priority` is Dramatiq's own option: its retries re-publish at the same priority.
    `traceparent` (core.tracing) is the job's stored trace context, for the worker to continue."""
    message = build_message(
        queue_name=GENERATION_QUEUE,
        actor_name=GENERATE_ACTOR,
        args=(job_id,),
        broker_priority=priority.amqp,
    )
    if trace_parent is not None:
        message.options[TRACEPARENT] = trace_parent
    return message


def cancel_message(job_id: str) -> dramatiq.Message[Any]:
    """A job was canceled (by its caller or its deadline): cancel its prediction at Replicate
    now, not at the next poll (which, with webhooks, may be far away)."""
    return build_message(queue_name=POLL_QUEUE, actor_name=CANCEL_ACTOR, args=(job_id,))


def poll_message(job_id: str, polls: int) -> dramatiq.Message[Any]:
    """Look at a running prediction again; `polls` came before (it spaces the next one)."""
    return build_message(queue_name=POLL_QUEUE, actor_name=POLL_ACTOR, args=(job_id, polls))


def prediction_webhook_message(job_id: str, prediction: dict[str, Any]) -> dramatiq.Message[Any]:
    """Replicate's prediction, as a webhook delivered it for the job, for the worker to treat
    like the answer of a poll."""
    return build_message(queue_name=POLL_QUEUE, actor_name=WEBHOOK_ACTOR, args=(job_id, prediction))


# --- queues and the worker's broker ---------------------------------------------------------


def queue_arguments(settings: BrokerSettings) -> Callable[[str], dict[str, Any]]:
    """The arguments of a queue (and its delay queue) exactly as the worker's Dramatiq broker
    declares them, for every process that declares it (RabbitMQ refuses a mismatch)."""

    def arguments(queue_name: str) -> dict[str, Any]:
        declared: dict[str, Any] = {
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": xq_name(queue_name),
        }
        if settings.broker_quorum_queues:
            # Quorum queues take no x-max-priority: RabbitMQ 4 still serves high-priority
            # messages first (two levels, without starving the rest), RabbitMQ 3 ignores it.
            declared["x-queue-type"] = "quorum"
        elif queue_name == GENERATION_QUEUE:
            declared["x-max-priority"] = MAX_PRIORITY
        return declared

    return arguments


def create_publisher(settings: BrokerSettings) -> AmqpPublisher:
    return AmqpPublisher(settings.broker_url, queue_arguments(settings))


def retries_middleware(settings: BrokerSettings) -> Retries:
    """Exponential backoff with jitter: min * 2**n * U(1, 2), capped at max (dramatiq's formula)."""
    return Retries(
        max_retries=settings.retry_max_retries,
        min_backoff=settings.retry_min_backoff_ms,
        max_backoff=settings.retry_max_backoff_ms,
    )


def build_middleware(settings: BrokerSettings) -> list[Middleware]:
    return [
        AgeLimit(),
        TimeLimit(time_limit=settings.actor_time_limit_ms),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        retries_middleware(settings),
        AsyncIO(),
        CurrentMessage(),
    ]


RunOnLoop = Callable[[Coroutine[Any, Any, Any]], Any]


def run_on_worker_loop(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine on the event loop of Dramatiq's AsyncIO middleware, from a worker or
    consumer thread, and return its result there."""
    loop_thread = get_event_loop_thread()
    if loop_thread is None:
        coroutine.close()
        raise RuntimeError("the worker's event loop is not running")
    return loop_thread.run_coroutine(coroutine)


class _ClosePublisher(Middleware):
    """Closes the publisher on the worker's loop once the worker threads are done. It comes
    after AsyncIO in the list: Dramatiq calls `after_*` hooks last to first, so this one runs
    before AsyncIO's, which stops the loop."""

    def __init__(self, publisher: AmqpPublisher, run_on_loop: RunOnLoop) -> None:
        self.publisher = publisher
        self.run_on_loop = run_on_loop

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        self.run_on_loop(self.publisher.close())


class AsyncPublishingBroker(RabbitmqBroker):
    """Dramatiq's RabbitMQ broker, consuming as usual, but declaring and publishing through an
    AmqpPublisher on the worker's event loop. `run_on_loop` runs a coroutine there and returns
    its result to the calling (worker or consumer) thread; async actors await
    `broker.publisher` directly instead."""

    def __init__(
        self,
        settings: BrokerSettings,
        publisher: AmqpPublisher,
        run_on_loop: RunOnLoop,
    ) -> None:
        super().__init__(url=settings.broker_url, middleware=build_middleware(settings))
        self.publisher = publisher
        self._run_on_loop = run_on_loop
        self._arguments = queue_arguments(settings)
        self.add_middleware(_ClosePublisher(publisher, run_on_loop))

    def _build_queue_arguments(self, queue_name: str) -> dict[str, Any]:
        return self._arguments(queue_name)

    def _ensure_queue(self, canonical_queue_name: str) -> None:
        if canonical_queue_name in self.queues_pending:
            self._run_on_loop(self.publisher.declare(canonical_queue_name))
            self.queues_pending.discard(canonical_queue_name)

    def enqueue(
        self, message: dramatiq.Message[Any], *, delay: int | None = None
    ) -> dramatiq.Message[Any]:
        self.declare_queue(message.queue_name)
        self.emit_before("enqueue", message, delay)
        self._run_on_loop(self.publisher.publish(message, delay_ms=delay))
        self.emit_after("enqueue", message, delay)
        if delay is not None:
            return message.copy(queue_name=dq_name(message.queue_name))
        return message
