"""Publishing Dramatiq messages from asyncio, natively: aio-pika with publisher confirms.

One connection and one confirming channel per process, on the event loop that uses them:
aiormq keeps the heartbeats (an idle connection is never dropped), many confirms can be in
flight at once (no thread pool, no per-message wait for a thread), and a lost connection is
opened again on the next publish. Messages are Dramatiq's own wire format, sent to the queues
as Dramatiq declares them, so Dramatiq's consumers and its Retries middleware take them as
if Dramatiq had sent them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aio_pika
import dramatiq
from aio_pika.abc import AbstractChannel, AbstractConnection
from dramatiq.common import current_millis, dq_name, q_name, xq_name

log = logging.getLogger(__name__)

DEAD_MESSAGE_TTL_MS = 7 * 24 * 3600 * 1000  # dramatiq's default for the dead-letter (XQ) queue


class PublishFailed(Exception):
    """The message may not be on RabbitMQ: unreachable, refused, unroutable or unconfirmed."""


QueueArguments = Callable[[str], dict[str, Any]]


class AmqpPublisher:
    """`await publish(message, delay_ms=...)` returns once RabbitMQ confirmed the persistent
    message, or raises PublishFailed."""

    def __init__(
        self,
        url: str,
        queue_arguments: QueueArguments,
        *,
        timeout: float = 10.0,
    ) -> None:
        self._url = url
        self._queue_arguments = queue_arguments
        self._timeout = timeout
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._declared: set[str] = set()
        self._lock = asyncio.Lock()

    async def _open_channel(self) -> AbstractChannel:
        if self._channel is not None and not self._channel.is_closed:
            return self._channel
        async with self._lock:
            if self._channel is not None and not self._channel.is_closed:
                return self._channel
            await self._close_quietly()
            self._declared.clear()  # a new broker (or node) may not have them
            self._connection = await aio_pika.connect(self._url, timeout=self._timeout)
            self._channel = await self._connection.channel(publisher_confirms=True)
            return self._channel

    async def declare(self, queue_name: str) -> None:
        """Declare a queue, its delay queue and its dead-letter queue as Dramatiq does
        (RabbitMQ refuses a declaration whose arguments differ from the queue's)."""
        try:
            channel = await self._open_channel()
            if queue_name in self._declared:
                return
            arguments = self._queue_arguments(queue_name)
            for name in (queue_name, dq_name(queue_name)):
                await channel.declare_queue(
                    name, durable=True, arguments=arguments, timeout=self._timeout
                )
            await channel.declare_queue(
                xq_name(queue_name),
                durable=True,
                arguments={"x-message-ttl": DEAD_MESSAGE_TTL_MS},
                timeout=self._timeout,
            )
            self._declared.add(queue_name)
        except (TimeoutError, aio_pika.exceptions.AMQPError, OSError) as exc:
            await self._forget_channel()
            raise PublishFailed(f"cannot declare {queue_name!r}: {exc!r}") from exc

    async def publish(self, message: dramatiq.Message[Any], *, delay_ms: int | None = None) -> None:
        """Publish to the message's queue, or with a delay to its delay queue with an eta, as
        Dramatiq's own `enqueue` does."""
        await self.declare(q_name(message.queue_name))
        if delay_ms is not None:
            message = message.copy(
                queue_name=dq_name(message.queue_name),
                options={"eta": current_millis() + delay_ms},
            )
        body = aio_pika.Message(message.encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        try:
            channel = await self._open_channel()
            # mandatory: a message no queue takes is an error, not silently dropped
            await channel.default_exchange.publish(
                body, routing_key=message.queue_name, mandatory=True, timeout=self._timeout
            )
        except (TimeoutError, aio_pika.exceptions.AMQPError, OSError) as exc:
            await self._forget_channel()
            raise PublishFailed(f"{message.actor_name} not published: {exc!r}") from exc

    async def _forget_channel(self) -> None:
        """After a failure, open everything anew on the next call."""
        async with self._lock:
            await self._close_quietly()

    async def _close_quietly(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and not connection.is_closed:
            try:
                await asyncio.wait_for(connection.close(), self._timeout)
            except Exception as exc:  # closing what is already broken must not fail
                log.debug("closing the AMQP connection failed: %r", exc)

    async def close(self) -> None:
        async with self._lock:
            await self._close_quietly()
