"""Dramatiq over RabbitMQ: the broker factory and the message contracts between services.

Producers send by actor name and queue (the contracts below), so the gateway never imports the
worker's code. The middleware list is explicit, so every behaviour we rely on is visible here.
"""

from __future__ import annotations

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
