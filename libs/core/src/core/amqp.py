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
import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

import aio_pika
import aiormq
import dramatiq
from aio_pika.abc import AbstractChannel, AbstractConnection
from dramatiq.common import current_millis, dq_name, q_name, xq_name
from pamqp.commands import Basic

from core.aio import raise_if_cancelling

log = logging.getLogger(__name__)

DEAD_MESSAGE_TTL_MS = 7 * 24 * 3600 * 1000  # dramatiq's default for the dead-letter (XQ) queue
_PERSISTENT = aiormq.spec.Basic.Properties(delivery_mode=2)


@functools.cache
def _persistent_with(priority: int) -> aiormq.spec.Basic.Properties:
    """Persistent, with an AMQP priority (Dramatiq's `broker_priority` option), made once."""
    return aiormq.spec.Basic.Properties(delivery_mode=2, priority=priority)


_BROKER_FAILURES = (aio_pika.exceptions.AMQPError, aiormq.exceptions.AMQPError, OSError)


class PublishFailed(Exception):
    """The message may not be on RabbitMQ: unreachable, refused, unroutable or unconfirmed."""


QueueArguments = Callable[[str], dict[str, Any]]


class AmqpPublisher:
    """`await publish(message, delay_ms=...)` returns once RabbitMQ confirmed the persistent
    message, or raises PublishFailed; `publish_many` sends a batch, all confirms in flight."""

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
        self._raw: aiormq.abc.AbstractChannel | None = None  # the channel under aio-pika's
        self._declared: set[str] = set()
        self._lock = asyncio.Lock()

    async def _open_channel(self) -> aiormq.abc.AbstractChannel:
        if self._raw is not None and not self._raw.is_closed:
            return self._raw
        async with self._lock:
            if self._raw is not None and not self._raw.is_closed:
                return self._raw
            await self._close_quietly()
            self._declared.clear()  # a new broker (or node) may not have them
            self._connection = await aio_pika.connect(self._url, timeout=self._timeout)
            self._channel = await self._connection.channel(publisher_confirms=True)
            self._raw = await self._channel.get_underlay_channel()
            return self._raw

    async def declare(self, queue_name: str) -> None:
        """Declare a queue, its delay queue and its dead-letter queue as Dramatiq does
        (RabbitMQ refuses a declaration whose arguments differ from the queue's)."""
        if queue_name in self._declared and self._raw is not None and not self._raw.is_closed:
            return
        try:
            await self._open_channel()
            assert self._channel is not None
            arguments = self._queue_arguments(queue_name)
            for name in (queue_name, dq_name(queue_name)):
                await self._channel.declare_queue(
                    name, durable=True, arguments=arguments, timeout=self._timeout
                )
            # The dead-letter queue is of the same type (a quorum XQ for quorum queues).
            same_type = {k: v for k, v in arguments.items() if k == "x-queue-type"}
            await self._channel.declare_queue(
                xq_name(queue_name),
                durable=True,
                arguments={"x-message-ttl": DEAD_MESSAGE_TTL_MS, **same_type},
                timeout=self._timeout,
            )
            self._declared.add(queue_name)
        except (*_BROKER_FAILURES, TimeoutError) as exc:
            raise_if_cancelling()  # aiormq turns a cancelled connect into a connection error
            await self._forget_channel()
            raise PublishFailed(f"cannot declare {queue_name!r}: {exc!r}") from exc

    async def publish(self, message: dramatiq.Message[Any], *, delay_ms: int | None = None) -> None:
        """Publish to the message's queue, or with a delay to its delay queue with an eta, as
        Dramatiq's own `enqueue` does."""
        if delay_ms is not None:
            message = message.copy(
                queue_name=dq_name(message.queue_name),
                options={"eta": current_millis() + delay_ms},
            )
        (failure,) = await self.publish_many([message])
        if failure is not None:
            raise failure

    async def publish_many(
        self, messages: Sequence[dramatiq.Message[Any]]
    ) -> list[PublishFailed | None]:
        """Publish a batch on one channel with every confirm in flight at once; one outcome per
        message, None where RabbitMQ confirmed it. The whole batch is bounded by the timeout
        (one timer for the batch: a timer per message costs as much as the message)."""
        try:
            for queue_name in {q_name(m.queue_name) for m in messages}:
                await self.declare(queue_name)
            channel = await self._open_channel()
            async with asyncio.timeout(self._timeout):  # not wait_for: see OutboxRelay.run
                results = await asyncio.gather(
                    *(self._send(channel, m) for m in messages), return_exceptions=True
                )
        except (*_BROKER_FAILURES, TimeoutError, PublishFailed) as exc:
            raise_if_cancelling()
            await self._forget_channel()
            failure = exc if isinstance(exc, PublishFailed) else PublishFailed(repr(exc))
            return [failure for _ in messages]
        outcomes: list[PublishFailed | None] = []
        for message, result in zip(messages, results, strict=True):
            if result is None or isinstance(result, PublishFailed):
                outcomes.append(result)
            elif isinstance(result, _BROKER_FAILURES):
                outcomes.append(PublishFailed(f"{message.actor_name} not published: {result!r}"))
            else:
                raise result  # a bug, not the broker
        if any(outcome is not None for outcome in outcomes):
            await self._forget_channel()
        raise_if_cancelling()  # an RPC that completed as the cancellation landed loses it
        return outcomes

    @staticmethod
    async def _send(channel: aiormq.abc.AbstractChannel, message: dramatiq.Message[Any]) -> None:
        # Straight to aiormq: aio-pika's own publish costs a third more CPU per message.
        priority = message.options.get("broker_priority")
        confirmation = await channel.basic_publish(
            message.encode(),
            routing_key=message.queue_name,
            properties=_PERSISTENT if priority is None else _persistent_with(priority),
            mandatory=True,  # a message no queue takes is an error, not silently dropped
        )
        if not isinstance(confirmation, Basic.Ack):
            raise PublishFailed(f"RabbitMQ did not take {message.actor_name}: {confirmation!r}")

    async def _forget_channel(self) -> None:
        """After a failure, open everything anew on the next call."""
        async with self._lock:
            await self._close_quietly()

    async def _close_quietly(self) -> None:
        connection, self._connection, self._channel, self._raw = self._connection, None, None, None
        if connection is not None and not connection.is_closed:
            try:
                async with asyncio.timeout(self._timeout):
                    await connection.close()
            except Exception as exc:  # closing what is already broken must not fail
                log.debug("closing the AMQP connection failed: %r", exc)

    async def close(self) -> None:
        async with self._lock:
            await self._close_quietly()
