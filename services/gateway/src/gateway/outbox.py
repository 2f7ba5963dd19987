"""The outbox relay: every accepted job reaches RabbitMQ, however the gateway fails.

POST /generate commits the job row with `enqueued_at` NULL (the row is the outbox entry),
hands the job id to this relay and answers 202 without waiting for the broker. The relay
publishes the ids it was handed at once, in batches, with publisher confirms, and marks the
confirmed jobs `enqueued` (by id: no scan of the table on the hot path).

Every GATEWAY_SWEEP_INTERVAL_SECONDS it also sweeps the table for what that fast path cannot
cover: jobs still unpublished after GATEWAY_UNPUBLISHED_GRACE_SECONDS (their gateway crashed
after the commit, or RabbitMQ refused them) and queued or running jobs nobody has touched for
GATEWAY_STALE_JOB_SECONDS (a message lost with a broker). The sweep claims them with
`FOR UPDATE SKIP LOCKED`, so several gateways never sweep one job at once. A job published
twice (a sweep racing a slow fast path) is harmless: the worker skips finished jobs and
resumes saved predictions.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import TypeVar

from prometheus_client import Histogram
from sqlmodel.ext.asyncio.session import AsyncSession

from core import jobs
from core.aio import raise_if_cancelling
from core.amqp import AmqpPublisher
from core.db import Database
from core.messaging import generate_message
from core.schemas.generation import Priority
from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

BATCH = 500
# Batches in flight at once: the next batch goes out while RabbitMQ still confirms the last
# (it confirms persistent messages after writing them to disk, in groups).
IN_FLIGHT = 16
PUBLISH_LAG = Histogram(
    "outbox_publish_lag_seconds",
    "From a job's commit (its 202) to RabbitMQ's confirm of its message, on the fast path",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
T = TypeVar("T")

Claim = Callable[[AsyncSession], Awaitable[list[jobs.Outgoing]]]


class OutboxRelay:
    def __init__(self, db: Database, publisher: AmqpPublisher, settings: GatewaySettings) -> None:
        self._db = db
        self._publisher = publisher
        self._interval = settings.gateway_sweep_interval_seconds
        self._grace = timedelta(seconds=settings.gateway_unpublished_grace_seconds)
        self._stale_after = timedelta(seconds=settings.gateway_stale_job_seconds)
        self._aged_after = timedelta(seconds=settings.gateway_priority_aging_seconds)
        self._accepted: list[jobs.Outgoing] = []
        self._accepted_at: dict[uuid.UUID, float] = {}  # for the publish-lag histogram
        self._work = asyncio.Event()
        self._confirmed: list[uuid.UUID] = []
        self._marking = asyncio.Event()
        self._in_flight = asyncio.Semaphore(IN_FLIGHT)

    def accepted(
        self, job_id: uuid.UUID, priority: Priority, trace_parent: str | None = None
    ) -> None:
        """A job was committed (or queued again): publish it now, not at the next sweep.
        `trace_parent`: the job's trace (core.tracing), carried on by its message."""
        self._accepted.append(jobs.Outgoing(job_id, priority, trace_parent))
        self._accepted_at[job_id] = time.monotonic()
        self._work.set()

    async def _publish_batch(self, batch: list[jobs.Outgoing]) -> None:
        """The confirmed jobs are marked by another task (a batch never waits on the
        database); those RabbitMQ did not confirm are left to the sweep (after the grace)."""
        confirmed = await self._publish(batch)
        now, published = time.monotonic(), set(confirmed)
        for job in batch:
            accepted_at = self._accepted_at.pop(job.job_id, None)
            if accepted_at is not None and job.job_id in published:
                PUBLISH_LAG.observe(now - accepted_at)
        self._confirmed.extend(confirmed)
        self._marking.set()

    async def _publish_in_flight(self, batch: list[jobs.Outgoing]) -> None:
        try:
            await self._publish_batch(batch)
        except Exception as exc:  # a bug, not the broker: the sweep publishes them later
            log.warning("outbox publish failed: %s: %s", type(exc).__name__, exc)
        finally:
            self._in_flight.release()

    async def mark_confirmed(self) -> int:
        """Record one batch of confirmed jobs as enqueued. Were the gateway to die before,
        the sweep would publish them again: a duplicate, never a loss."""
        batch = _take_batch(self._confirmed)
        if batch:
            async with self._db.session() as session:
                await jobs.mark_enqueued(session, batch, "published by the gateway")
        return len(batch)

    async def sweep_unpublished(self) -> int:
        """Publish one batch of jobs left unpublished past the grace time."""
        return await self._sweep(
            lambda session: jobs.claim_unpublished(session, self._grace, BATCH),
            "published by the gateway's sweep",
        )

    async def resend_stale(self) -> int:
        seconds = int(self._stale_after.total_seconds())
        return await self._sweep(
            lambda session: jobs.claim_stale(session, self._stale_after, BATCH),
            f"sent again: untouched for {seconds} s",
        )

    async def resend_aged(self) -> int:
        seconds = int(self._aged_after.total_seconds())
        return await self._sweep(
            lambda session: jobs.claim_aged(session, self._aged_after, BATCH),
            f"sent again at high priority: queued for {seconds} s",
            priority=Priority.high,
        )

    async def _sweep(self, claim: Claim, detail: str, priority: Priority | None = None) -> int:
        async with self._db.transaction() as session:
            claimed = await claim(session)
            if priority is not None:
                claimed = [jobs.Outgoing(job.job_id, priority, job.trace_parent) for job in claimed]
            sent = await self._publish(claimed) if claimed else []
            if sent:
                await jobs.mark_enqueued(session, sent, detail)
        return len(claimed)

    async def _publish(self, outgoing: Sequence[jobs.Outgoing]) -> list[uuid.UUID]:
        """The ids whose message RabbitMQ confirmed (failures are logged, not raised)."""
        outcomes = await self._publisher.publish_many(
            [generate_message(str(job.job_id), job.priority, job.trace_parent) for job in outgoing]
        )
        failed = [failure for failure in outcomes if failure is not None]
        if failed:
            log.warning("%d of %d job(s) not published: %s", len(failed), len(outgoing), failed[0])
        return [
            job.job_id for job, failure in zip(outgoing, outcomes, strict=True) if failure is None
        ]

    async def run(self) -> None:
        """Until cancelled: publish accepted jobs as they come, and sweep every interval, in
        two tasks, so that a slow sweep never holds up the jobs being accepted."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._publish_accepted_forever(), name="outbox-publish")
            group.create_task(self._mark_confirmed_forever(), name="outbox-mark")
            group.create_task(self._sweep_forever(), name="outbox-sweep")

    async def _publish_accepted_forever(self) -> None:
        async with asyncio.TaskGroup() as batches:
            while True:
                self._work.clear()
                while self._accepted:
                    await self._in_flight.acquire()
                    batches.create_task(self._publish_in_flight(_take_batch(self._accepted)))
                raise_if_cancelling()  # see core.aio: never wait again once asked to stop
                await self._work.wait()

    async def _mark_confirmed_forever(self) -> None:
        while True:
            self._marking.clear()
            try:
                while await self.mark_confirmed():
                    pass
            except Exception as exc:  # the database away: the sweep sends them again later
                log.warning("outbox marking failed: %s: %s", type(exc).__name__, exc)
            raise_if_cancelling()
            await self._marking.wait()

    async def _sweep_forever(self) -> None:
        while True:
            try:
                while await self.sweep_unpublished() == BATCH:
                    pass
                while await self.resend_stale() == BATCH:
                    pass
                while await self.resend_aged() == BATCH:
                    pass
            except Exception as exc:  # the database away, most likely: try again next interval
                log.warning("outbox sweep failed: %s: %s", type(exc).__name__, exc)
            raise_if_cancelling()
            await asyncio.sleep(self._interval)


def _take_batch(pending: list[T]) -> list[T]:
    """Remove and return the first BATCH items of `pending`."""
    batch = pending[:BATCH]
    del pending[:BATCH]
    return batch
