"""Dramatiq over RabbitMQ: the broker factory and the message contracts between services.

Producers send by actor name and queue (the contracts below), so the gateway never imports the
worker's code. The middleware list is explicit, so every behaviour we rely on is visible here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio.to_thread
import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
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

from core.settings import BrokerSettings


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


def create_broker(settings: BrokerSettings, *, set_global: bool = True) -> RabbitmqBroker:
    """A RabbitMQ broker with publisher confirms: send() returns only once RabbitMQ has the
    message on disk-backed durable queues (or raises)."""
    broker = RabbitmqBroker(
        url=settings.broker_url,
        confirm_delivery=True,
        middleware=build_middleware(settings),
    )
    if set_global:
        dramatiq.set_broker(broker)
    return broker


def build_message(
    *, queue_name: str, actor_name: str, args: tuple[Any, ...] = (), **options: Any
) -> dramatiq.Message[Any]:
    return dramatiq.Message(
        queue_name=queue_name, actor_name=actor_name, args=args, kwargs={}, options=options
    )


async def publish(broker: dramatiq.Broker, message: dramatiq.Message[Any]) -> None:
    """Enqueue without blocking the event loop: pika's BlockingConnection runs in a thread."""
    await anyio.to_thread.run_sync(broker.enqueue, message)


# --- contracts -----------------------------------------------------------------------------
# The gateway and the sweeper send this message; the generation worker defines the actor.
GENERATION_QUEUE = "generation"
GENERATE_ACTOR = "generate_media"
STEP_START = "start"  # first delivery of a job, or a re-publish by the sweeper
STEP_POLL = "poll"  # check a running prediction again


def generate_message(job_id: str, step: str = STEP_START, polls: int = 0) -> dramatiq.Message[Any]:
    """Args: the job id, the step, and how many polls came before (it spaces the next one)."""
    return build_message(
        queue_name=GENERATION_QUEUE, actor_name=GENERATE_ACTOR, args=(job_id, step, polls)
    )


class Publisher:
    """Publishes from a small pool of dedicated threads, so the event loop never waits on the
    broker. dramatiq keeps one pika connection per thread, and each confirmed publish waits for
    RabbitMQ to take the message (a few ms for a persistent one), so several threads let
    concurrent requests publish in parallel instead of queueing behind one confirm."""

    def __init__(self, broker: dramatiq.Broker, *, threads: int = 8) -> None:
        self.broker = broker
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="publisher")

    async def send(
        self,
        message: dramatiq.Message[Any],
        *,
        delay_ms: int | None = None,
        timeout: float = 10,  # noqa: ASYNC109
    ) -> None:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self._executor, functools.partial(self.broker.enqueue, message, delay=delay_ms)
        )
        await asyncio.wait_for(future, timeout)

    async def aclose(self) -> None:
        """Close the broker's connections (all threads'), then the threads."""
        loop = asyncio.get_running_loop()
        # Closing a dead connection must not fail shutdown.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(loop.run_in_executor(self._executor, self.broker.close), 5)
        self._executor.shutdown(wait=False, cancel_futures=True)
