"""Dramatiq over the real RabbitMQ, publishing with aio-pika: the worker's broker wiring, the
message contracts, publish with confirms, delays, Dramatiq's retries with backoff, async
actors, and connections that survive idling and close without an ERROR line.

Each test uses its own queue (deleted afterwards with its .DQ and .XQ) and its own broker, which
is never made dramatiq's global broker.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dramatiq
import pika
import pytest
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.common import current_millis, dq_name, xq_name
from dramatiq.middleware import (
    AgeLimit,
    AsyncIO,
    Callbacks,
    CurrentMessage,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from core.amqp import AmqpPublisher, PublishFailed
from core.messaging import (
    GENERATE_ACTOR,
    GENERATION_QUEUE,
    POLL_ACTOR,
    POLL_QUEUE,
    WEBHOOK_ACTOR,
    AsyncPublishingBroker,
    build_message,
    create_publisher,
    generate_message,
    poll_message,
    prediction_webhook_message,
    queue_arguments,
    run_on_worker_loop,
)
from core.settings import BrokerSettings

BROKER_URL = os.environ.get("TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
WAIT_SECONDS = 20  # upper bound on waiting for the worker; never an assertion on speed


def broker_settings(**overrides: Any) -> BrokerSettings:
    values: dict[str, Any] = {"broker_url": BROKER_URL, "environment": "test"}
    values.update(overrides)
    return BrokerSettings(**values)


@pytest.fixture
def queue_name() -> Iterator[str]:
    name = f"test_core_{uuid.uuid4().hex[:12]}"
    yield name
    connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
    try:
        channel = connection.channel()
        for queue in (name, dq_name(name), xq_name(name)):
            channel.queue_delete(queue=queue)
    finally:
        connection.close()


@pytest.fixture
def make_broker() -> Iterator[Callable[..., AsyncPublishingBroker]]:
    brokers: list[AsyncPublishingBroker] = []

    def make(**overrides: Any) -> AsyncPublishingBroker:
        settings = broker_settings(**overrides)
        broker = AsyncPublishingBroker(settings, create_publisher(settings), run_on_worker_loop)
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.close()


@pytest.fixture
async def publisher() -> AsyncIterator[AmqpPublisher]:
    """A publisher of the test's own, on the test's event loop (as the gateway's is)."""
    publisher = create_publisher(broker_settings())
    yield publisher
    await publisher.close()


@contextmanager
def running_worker(broker: dramatiq.Broker) -> Iterator[dramatiq.Worker]:
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop(timeout=10_000)


async def wait_for(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, WAIT_SECONDS), "the worker never got there"


async def wait_for_counts(
    broker: AsyncPublishingBroker, queue: str, expected: tuple[int, int, int]
) -> None:
    """Poll (ready in queue, in .DQ, in .XQ) until it matches, within a generous bound."""
    deadline = time.monotonic() + WAIT_SECONDS
    counts = broker.get_queue_message_counts(queue)
    while counts != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        counts = broker.get_queue_message_counts(queue)
    assert counts == expected


# --- wiring ----------------------------------------------------------------------------------


def test_the_worker_broker_is_wired_from_settings() -> None:
    settings = broker_settings(
        retry_max_retries=4,
        retry_min_backoff_ms=123,
        retry_max_backoff_ms=4567,
        actor_time_limit_ms=89_000,
    )
    broker = AsyncPublishingBroker(settings, create_publisher(settings), run_on_worker_loop)
    try:
        kinds = [type(m) for m in broker.middleware]
        assert [k for k in kinds if k.__module__.startswith("dramatiq")] == [
            AgeLimit,
            TimeLimit,
            ShutdownNotifications,
            Callbacks,
            Pipelines,
            Retries,
            AsyncIO,
            CurrentMessage,
        ]
        # The publisher is closed by a hook that runs before AsyncIO stops the loop (after_*
        # hooks run last to first).
        assert kinds.index(AsyncIO) < [k.__name__ for k in kinds].index("_ClosePublisher")
        (retries,) = [m for m in broker.middleware if isinstance(m, Retries)]
        assert (retries.max_retries, retries.min_backoff, retries.max_backoff) == (4, 123, 4567)
        (time_limit,) = [m for m in broker.middleware if isinstance(m, TimeLimit)]
        assert time_limit.time_limit == 89_000
        assert broker._build_queue_arguments("q") == queue_arguments(settings)("q")
    finally:
        broker.close()


def test_message_contracts() -> None:
    start = generate_message("job-1")
    assert (start.queue_name, start.actor_name, start.args) == (
        GENERATION_QUEUE,
        GENERATE_ACTOR,
        ("job-1",),
    )
    poll = poll_message("job-1", 3)
    assert (poll.queue_name, poll.actor_name, poll.args) == (POLL_QUEUE, POLL_ACTOR, ("job-1", 3))
    prediction = {"id": "abc", "status": "succeeded"}
    webhook = prediction_webhook_message("job-1", prediction)
    assert (webhook.queue_name, webhook.actor_name, webhook.args) == (
        POLL_QUEUE,
        WEBHOOK_ACTOR,
        ("job-1", prediction),
    )
    assert dramatiq.Message.decode(webhook.encode()).args == ("job-1", prediction)
    options = build_message(queue_name="q", actor_name="a", max_retries=2).options
    assert options == {"max_retries": 2}


# --- real round trips ------------------------------------------------------------------------


async def test_publish_round_trip(
    make_broker: Callable[..., AsyncPublishingBroker],
    publisher: AmqpPublisher,
    queue_name: str,
) -> None:
    broker = make_broker()
    received: list[tuple[Any, ...]] = []
    done = threading.Event()

    def handle(name: str, count: int) -> None:
        received.append((name, count))
        done.set()

    dramatiq.actor(broker=broker, queue_name=queue_name, actor_name=f"{queue_name}_handle")(handle)

    await publisher.publish(
        build_message(queue_name=queue_name, actor_name=f"{queue_name}_handle", args=("x", 2))
    )
    # publish() returned only once RabbitMQ had the message (publisher confirms).
    assert broker.get_queue_message_counts(queue_name) == (1, 0, 0)

    with running_worker(broker):
        await wait_for(done)
        await wait_for_counts(broker, queue_name, (0, 0, 0))
    assert received == [("x", 2)]


async def test_publisher_delay_goes_through_delay_queue(
    make_broker: Callable[..., AsyncPublishingBroker],
    publisher: AmqpPublisher,
    queue_name: str,
) -> None:
    broker = make_broker()
    delivered_at: list[int] = []
    done = threading.Event()

    def handle() -> None:
        delivered_at.append(current_millis())
        done.set()

    actor_name = f"{queue_name}_delayed"
    dramatiq.actor(broker=broker, queue_name=queue_name, actor_name=actor_name)(handle)
    sent_at = current_millis()
    await publisher.publish(
        build_message(queue_name=queue_name, actor_name=actor_name), delay_ms=200
    )
    assert broker.get_queue_message_counts(queue_name) == (0, 1, 0)
    with running_worker(broker):
        await wait_for(done)
    assert delivered_at[0] - sent_at >= 200


async def test_an_unreachable_broker_is_a_publish_failure(queue_name: str) -> None:
    settings = broker_settings(broker_url="amqp://guest:guest@127.0.0.1:1/%2F")
    publisher = create_publisher(settings)
    with pytest.raises(PublishFailed):
        await publisher.publish(build_message(queue_name=queue_name, actor_name="nobody"))
    await publisher.close()


async def test_cancelling_a_publish_to_an_unreachable_broker_cancels(queue_name: str) -> None:
    publisher = create_publisher(broker_settings(broker_url="amqp://guest:guest@127.0.0.1:1/%2F"))
    publishing = asyncio.create_task(
        publisher.publish(build_message(queue_name=queue_name, actor_name="nobody"))
    )
    await asyncio.sleep(0)  # it is connecting now
    publishing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await publishing
    await publisher.close()


async def test_an_idle_connection_keeps_its_heartbeats(
    publisher: AmqpPublisher, queue_name: str
) -> None:
    # Heartbeats every second: a connection that sent none would be closed within ~2-3 s.
    quick = create_publisher(broker_settings(broker_url=f"{BROKER_URL}?heartbeat=1"))
    try:
        message = build_message(queue_name=queue_name, actor_name="idle")
        await quick.publish(message)
        connection = quick._connection
        await asyncio.sleep(4)  # idle, on purpose: this is the behaviour under test
        await quick.publish(message)
        assert quick._connection is connection  # the same connection, never dropped
    finally:
        await quick.close()


async def test_failing_actor_is_retried_with_backoff(
    make_broker: Callable[..., AsyncPublishingBroker],
    publisher: AmqpPublisher,
    queue_name: str,
) -> None:
    min_backoff = 100
    broker = make_broker(
        retry_max_retries=3, retry_min_backoff_ms=min_backoff, retry_max_backoff_ms=1000
    )
    attempts: list[int] = []  # wall-clock ms, the clock dramatiq computes etas with
    done = threading.Event()

    def flaky() -> None:
        attempts.append(current_millis())
        if len(attempts) < 3:
            raise ConnectionError("transient")
        done.set()

    actor_name = f"{queue_name}_flaky"
    dramatiq.actor(broker=broker, queue_name=queue_name, actor_name=actor_name)(flaky)
    await publisher.publish(build_message(queue_name=queue_name, actor_name=actor_name))
    with running_worker(broker):
        await wait_for(done)
        await wait_for_counts(broker, queue_name, (0, 0, 0))

    assert len(attempts) == 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    # Backoff before retry n is min * 2**n * U(1, 2): at least min, then at least 2 * min.
    assert gaps[0] >= min_backoff
    assert gaps[1] >= 2 * min_backoff


async def test_retries_exhausted_dead_letters_the_message(
    make_broker: Callable[..., AsyncPublishingBroker],
    publisher: AmqpPublisher,
    queue_name: str,
) -> None:
    broker = make_broker(retry_max_retries=1, retry_min_backoff_ms=50, retry_max_backoff_ms=200)
    attempts: list[int] = []

    def always_fails() -> None:
        attempts.append(current_millis())
        raise ConnectionError("still down")

    actor_name = f"{queue_name}_fails"
    dramatiq.actor(broker=broker, queue_name=queue_name, actor_name=actor_name)(always_fails)
    await publisher.publish(build_message(queue_name=queue_name, actor_name=actor_name))
    with running_worker(broker):
        await wait_for_counts(broker, queue_name, (0, 0, 1))
    assert len(attempts) == 2  # the first try plus max_retries=1 from BrokerSettings


async def test_exception_in_throws_is_not_retried(
    make_broker: Callable[..., AsyncPublishingBroker],
    publisher: AmqpPublisher,
    queue_name: str,
) -> None:
    class PermanentError(Exception):
        pass

    broker = make_broker(retry_max_retries=3, retry_min_backoff_ms=50, retry_max_backoff_ms=200)
    attempts: list[int] = []

    def rejects() -> None:
        attempts.append(current_millis())
        raise PermanentError("bad input")

    actor_name = f"{queue_name}_rejects"
    dramatiq.actor(
        broker=broker, queue_name=queue_name, actor_name=actor_name, throws=(PermanentError,)
    )(rejects)
    await publisher.publish(build_message(queue_name=queue_name, actor_name=actor_name))
    with running_worker(broker):
        await wait_for_counts(broker, queue_name, (0, 0, 1))
    # Stopped: anything held back for a retry would be back in .DQ now. Nothing is.
    assert broker.get_queue_message_counts(queue_name) == (0, 0, 1)
    assert len(attempts) == 1


async def test_async_actor_runs_on_the_asyncio_middleware_loop(
    make_broker: Callable[..., AsyncPublishingBroker],
    publisher: AmqpPublisher,
    queue_name: str,
) -> None:
    broker = make_broker()
    seen: dict[str, Any] = {}
    done = threading.Event()

    async def handle(value: int) -> None:
        await asyncio.sleep(0.01)
        loop_thread = get_event_loop_thread()
        seen["loop"] = asyncio.get_running_loop()
        seen["middleware_loop"] = loop_thread.loop if loop_thread else None
        seen["thread"] = threading.current_thread()
        seen["loop_thread"] = loop_thread
        seen["value"] = value
        done.set()

    actor_name = f"{queue_name}_async"
    dramatiq.actor(broker=broker, queue_name=queue_name, actor_name=actor_name)(handle)
    await publisher.publish(build_message(queue_name=queue_name, actor_name=actor_name, args=(7,)))
    with running_worker(broker):
        await wait_for(done)
    assert seen["value"] == 7
    assert seen["loop"] is seen["middleware_loop"]
    assert seen["loop"] is not asyncio.get_running_loop()  # not the caller's loop
    assert seen["thread"] is seen["loop_thread"]
    assert get_event_loop_thread() is None  # the middleware stopped its loop with the worker


async def test_a_worker_stops_without_an_error_line(
    make_broker: Callable[..., AsyncPublishingBroker],
    publisher: AmqpPublisher,
    queue_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = make_broker(retry_max_retries=1, retry_min_backoff_ms=50, retry_max_backoff_ms=100)
    done = threading.Event()
    calls: list[int] = []

    def once_retried() -> None:  # one retry: Dramatiq re-enqueues through the publisher
        calls.append(1)
        if len(calls) == 1:
            raise dramatiq.Retry(delay=50)
        done.set()

    actor_name = f"{queue_name}_stop"
    dramatiq.actor(broker=broker, queue_name=queue_name, actor_name=actor_name)(once_retried)
    await publisher.publish(build_message(queue_name=queue_name, actor_name=actor_name))
    with caplog.at_level(logging.INFO), running_worker(broker):
        await wait_for(done)
    broker.close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
