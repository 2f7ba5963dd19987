"""Dramatiq entry point: `dramatiq generation_worker.actors` (see __main__ for the shape).

The actor is a thin wrapper: the state machine lives in steps.py and is tested directly.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import AsyncIO, CurrentMessage, Middleware

from core.logging import configure_logging, job_id_var, load_settings
from core.messaging import (
    GENERATE_ACTOR,
    GENERATION_QUEUE,
    STEP_POLL,
    Publisher,
    create_broker,
    generate_message,
)
from generation_worker.context import WorkerContext
from generation_worker.settings import WorkerSettings
from generation_worker.steps import Done, Poll, RetryLater, advance

log = logging.getLogger(__name__)

settings = load_settings("generation_worker", WorkerSettings)
configure_logging("generation_worker", settings.log_level)
broker = create_broker(settings)


class WorkerResources(Middleware):
    """Opens the WorkerContext lazily on dramatiq's event loop and closes it there on shutdown
    (an asyncpg pool or aiohttp session belongs to the loop that opened it)."""

    def __init__(self) -> None:
        self._context: WorkerContext | None = None
        self._lock: asyncio.Lock | None = None

    async def get(self) -> WorkerContext:
        if self._context is None:
            self._lock = self._lock or asyncio.Lock()
            async with self._lock:
                if self._context is None:
                    self._context = await WorkerContext.open(
                        settings, Publisher(broker, threads=settings.broker_publisher_threads)
                    )
        return self._context

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        loop_thread = get_event_loop_thread()
        if self._context is not None and loop_thread is not None:
            loop_thread.run_coroutine(self._context.aclose())
            self._context = None


resources = WorkerResources()
# Before AsyncIO, so our shutdown hook runs while its loop is still alive.
broker.add_middleware(resources, before=AsyncIO)


@dramatiq.actor(
    actor_name=GENERATE_ACTOR,
    queue_name=GENERATION_QUEUE,
    # The job's attempt budget (generation_max_attempts) decides failure; this is only the
    # backstop for faults that keep the job row itself unreachable (e.g. a database outage).
    max_retries=settings.retry_max_retries + settings.generation_max_attempts,
)
async def generate_media(job_id: str, step: str = "start", polls: int = 0) -> None:
    token = job_id_var.set(job_id)
    try:
        message = CurrentMessage.get_current_message()
        retries = int(message.options.get("retries", 0)) if message is not None else 0
        ctx = await resources.get()
        outcome = await advance(
            ctx, uuid.UUID(job_id), is_retry=retries > 0, polls=polls, is_poll=step == STEP_POLL
        )
        match outcome:
            case Done():
                return
            case Poll(delay_seconds=delay):
                assert ctx.publisher is not None
                await ctx.publisher.send(
                    generate_message(job_id, STEP_POLL, polls + 1), delay_ms=int(delay * 1000)
                )
            case RetryLater(delay_seconds=delay):
                # Retries re-enqueues this message with our delay (backoff or Retry-After).
                raise dramatiq.Retry(delay=int(delay * 1000))
    finally:
        job_id_var.reset(token)
