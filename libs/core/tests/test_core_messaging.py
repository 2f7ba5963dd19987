"""Dramatiq over the real RabbitMQ: broker wiring, publish, retries with backoff, async actors.

Each test uses its own queue (deleted afterwards with its .DQ and .XQ) and its own broker, which
is never made dramatiq's global broker.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dramatiq
import dramatiq.broker
import pika
import pytest
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.common import current_millis, dq_name, xq_name
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

from core.messaging import (
    GENERATE_ACTOR,
    GENERATION_QUEUE,
    STEP_POLL,
    STEP_START,
    Publisher,
    build_message,
    create_broker,
    generate_message,
    publish,
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
def make_broker() -> Iterator[Callable[..., RabbitmqBroker]]:
    brokers: list[RabbitmqBroker] = []

    def make(**overrides: Any) -> RabbitmqBroker:
        broker = create_broker(broker_settings(**overrides), set_global=False)
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.close()


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
    broker: RabbitmqBroker, queue: str, expected: tuple[int, int, int]
) -> None:
    """Poll (ready in queue, in .DQ, in .XQ) until it matches, within a generous bound."""
    deadline = time.monotonic() + WAIT_SECONDS
    counts = broker.get_queue_message_counts(queue)
    while counts != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        counts = broker.get_queue_message_counts(queue)
    assert counts == expected


# --- wiring ----------------------------------------------------------------------------------


def test_create_broker_wiring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dramatiq.broker, "global_broker", None)
    settings = broker_settings(
        retry_max_retries=4,
        retry_min_backoff_ms=123,
        retry_max_backoff_ms=4567,
        actor_time_limit_ms=89_000,
    )
    broker = create_broker(settings, set_global=False)
    try:
        assert isinstance(broker, RabbitmqBroker)
        assert broker.confirm_delivery is True
        assert [type(m) for m in broker.middleware] == [
            AgeLimit,
            TimeLimit,
            ShutdownNotifications,
            Callbacks,
            Pipelines,
            Retries,
            AsyncIO,
            CurrentMessage,
        ]
        (retries,) = [m for m in broker.middleware if isinstance(m, Retries)]
        assert (retries.max_retries, retries.min_backoff, retries.max_backoff) == (4, 123, 4567)
        (time_limit,) = [m for m in broker.middleware if isinstance(m, TimeLimit)]
        assert time_limit.time_limit == 89_000
        assert dramatiq.broker.global_broker is None  # set_global=False leaves it alone
    finally:
        broker.close()

    global_broker = create_broker(settings)
    try:
        assert dramatiq.get_broker() is global_broker
    finally:
        global_broker.close()


def test_generate_message_contract() -> None:
    message = generate_message("job-1")
    assert (message.queue_name, message.actor_name) == (GENERATION_QUEUE, GENERATE_ACTOR)
    assert message.args[:2] == ("job-1", STEP_START)
    assert generate_message("job-1", STEP_POLL).args[:2] == ("job-1", STEP_POLL)
    options = build_message(queue_name="q", actor_name="a", max_retries=2).options
    assert options == {"max_retries": 2}


# --- real round trips ------------------------------------------------------------------------


async def test_publish_round_trip(
    make_broker: Callable[..., RabbitmqBroker], queue_name: str
) -> None:
    broker = make_broker()
    enqueue_threads: list[int] = []

    class RecordEnqueueThread(Middleware):
        def before_enqueue(self, broker: dramatiq.Broker, message: Any, delay: Any) -> None:
            enqueue_threads.append(threading.get_ident())

    broker.add_middleware(RecordEnqueueThread())
    received: list[tuple[Any, ...]] = []
    done = threading.Event()

    def handle(name: str, count: int) -> None:
        received.append((name, count))
        done.set()

    dramatiq.actor(broker=broker, queue_name=queue_name, actor_name=f"{queue_name}_handle")(handle)

    await publish(
        broker,
        build_message(queue_name=queue_name, actor_name=f"{queue_name}_handle", args=("x", 2)),
    )
    # The blocking pika publish ran off the event loop's thread...
    assert enqueue_threads
    assert threading.get_ident() not in enqueue_threads
    # ...and returned only once RabbitMQ had the message (publisher confirms).
    assert broker.get_queue_message_counts(queue_name) == (1, 0, 0)

    with running_worker(broker):
        await wait_for(done)
        await wait_for_counts(broker, queue_name, (0, 0, 0))
    assert received == [("x", 2)]


async def test_publisher_delay_goes_through_delay_queue(
    make_broker: Callable[..., RabbitmqBroker], queue_name: str
) -> None:
    broker = make_broker()
    delivered_at: list[int] = []
    done = threading.Event()

    def handle() -> None:
        delivered_at.append(current_millis())
        done.set()

    actor_name = f"{queue_name}_delayed"
    dramatiq.actor(broker=broker, queue_name=queue_name, actor_name=actor_name)(handle)
    publisher = Publisher(broker)
    try:
        sent_at = current_millis()
        await publisher.send(
            build_message(queue_name=queue_name, actor_name=actor_name), delay_ms=200
        )
        assert broker.get_queue_message_counts(queue_name) == (0, 1, 0)
        with running_worker(broker):
            await wait_for(done)
        assert delivered_at[0] - sent_at >= 200
    finally:
        await publisher.aclose()


async def test_failing_actor_is_retried_with_backoff(
    make_broker: Callable[..., RabbitmqBroker], queue_name: str
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
    await publish(broker, build_message(queue_name=queue_name, actor_name=actor_name))
    with running_worker(broker):
        await wait_for(done)
        await wait_for_counts(broker, queue_name, (0, 0, 0))

    assert len(attempts) == 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    # Backoff before retry n is min * 2**n * U(1, 2): at least min, then at least 2 * min.
    assert gaps[0] >= min_backoff
    assert gaps[1] >= 2 * min_backoff


async def test_retries_exhausted_dead_letters_the_message(
    make_broker: Callable[..., RabbitmqBroker], queue_name: str
) -> None:
    broker = make_broker(retry_max_retries=1, retry_min_backoff_ms=50, retry_max_backoff_ms=200)
    attempts: list[int] = []

    def always_fails() -> None:
        attempts.append(current_millis())
        raise ConnectionError("still down")

    actor_name = f"{queue_name}_fails"
    dramatiq.actor(broker=broker, queue_name=queue_name, actor_name=actor_name)(always_fails)
    await publish(broker, build_message(queue_name=queue_name, actor_name=actor_name))
    with running_worker(broker):
        await wait_for_counts(broker, queue_name, (0, 0, 1))
    assert len(attempts) == 2  # the first try plus max_retries=1 from BrokerSettings


async def test_exception_in_throws_is_not_retried(
    make_broker: Callable[..., RabbitmqBroker], queue_name: str
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
    await publish(broker, build_message(queue_name=queue_name, actor_name=actor_name))
    with running_worker(broker):
        await wait_for_counts(broker, queue_name, (0, 0, 1))
    # Stopped: anything held back for a retry would be back in .DQ now. Nothing is.
    assert broker.get_queue_message_counts(queue_name) == (0, 0, 1)
    assert len(attempts) == 1


async def test_async_actor_runs_on_the_asyncio_middleware_loop(
    make_broker: Callable[..., RabbitmqBroker], queue_name: str
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
    await publish(broker, build_message(queue_name=queue_name, actor_name=actor_name, args=(7,)))
    with running_worker(broker):
        await wait_for(done)
    assert seen["value"] == 7
    assert seen["loop"] is seen["middleware_loop"]
    assert seen["loop"] is not asyncio.get_running_loop()  # not the caller's loop
    assert seen["thread"] is seen["loop_thread"]
    assert get_event_loop_thread() is None  # the middleware stopped its loop with the worker
