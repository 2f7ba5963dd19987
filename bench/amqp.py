"""The generation queue as dramatiq declares it, and Dramatiq-format messages via aio-pika.

Used by the raw-asyncpg and Core reference apps (publishing with publisher confirms) and by the
publish-lag consumer. Queue arguments must match dramatiq's exactly: RabbitMQ refuses a second
declaration of a queue with different arguments.
"""

from __future__ import annotations

from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractQueue, AbstractRobustConnection

from core.messaging import GENERATION_QUEUE, generate_message
from core.messaging import queue_arguments as core_queue_arguments
from core.schemas.generation import Priority
from core.settings import BrokerSettings


def queue_arguments(queue: str) -> dict[str, Any]:
    """The gateway's and the worker's declaration of the queue (RabbitMQ refuses another)."""
    return core_queue_arguments(BrokerSettings())(queue)


async def declare_generation_queue(channel: AbstractChannel) -> AbstractQueue:
    return await channel.declare_queue(
        GENERATION_QUEUE, durable=True, arguments=queue_arguments(GENERATION_QUEUE)
    )


def generate_message_body(job_id: str) -> bytes:
    """What the gateway's outbox relay publishes for a job (dramatiq's JSON encoding)."""
    return generate_message(job_id).encode()


class ConfirmingPublisher:
    """One connection, one channel with publisher confirms: `publish` returns once RabbitMQ
    has taken the persistent message. aiormq tracks delivery tags, so concurrent requests
    share the channel with many confirms in flight (no thread pool needed)."""

    def __init__(self, connection: AbstractRobustConnection, channel: AbstractChannel) -> None:
        self._connection = connection
        self._channel = channel

    @classmethod
    async def connect(cls, url: str) -> ConfirmingPublisher:
        connection = await aio_pika.connect_robust(url)
        channel = await connection.channel(publisher_confirms=True)
        await declare_generation_queue(channel)
        return cls(connection, channel)

    async def publish_generate(self, job_id: str, *, timeout: float = 5.0) -> None:
        message = aio_pika.Message(
            generate_message_body(job_id),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            priority=Priority.normal.amqp,  # as the gateway's relay sends a default job
        )
        # mandatory: an unroutable message is an error, as in dramatiq with confirms
        await self._channel.default_exchange.publish(
            message, routing_key=GENERATION_QUEUE, mandatory=True, timeout=timeout
        )

    async def close(self) -> None:
        await self._connection.close()
