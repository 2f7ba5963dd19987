"""The outbox relay: every accepted job reaches RabbitMQ, however the gateway fails.

POST /generate commits the job row with `enqueued_at` NULL (the row is the outbox entry) and
wakes this relay; it answers 202 without waiting for the broker. The relay then claims the
unpublished jobs in batches (`FOR UPDATE SKIP LOCKED`, so several gateways never publish one
job twice at once), publishes them concurrently with publisher confirms, and marks the
confirmed ones in the same transaction. A gateway killed after the commit leaves its jobs in
the table for the next relay round of any gateway; a broker outage leaves them there until it
is back. Every GATEWAY_SWEEP_INTERVAL_SECONDS it also re-sends queued or running jobs nobody has
touched for GATEWAY_STALE_JOB_SECONDS (a message lost with a broker); the worker skips finished
jobs and resumes saved predictions, so a duplicate is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from core import jobs
from core.aio import raise_if_cancelling
from core.amqp import AmqpPublisher, PublishFailed
from core.db import Database
from core.messaging import generate_message
from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

BATCH = 500

Claim = Callable[[AsyncSession], Awaitable[list[uuid.UUID]]]


class OutboxRelay:
    def __init__(self, db: Database, publisher: AmqpPublisher, settings: GatewaySettings) -> None:
        self._db = db
        self._publisher = publisher
        self._interval = settings.gateway_sweep_interval_seconds
        self._stale_after = timedelta(seconds=settings.gateway_stale_job_seconds)
        self._work = asyncio.Event()

    def wake(self) -> None:
        """A job was committed: publish it now rather than at the next sweep."""
        self._work.set()

    async def publish_unpublished(self) -> int:
        """One batch of jobs never confirmed; returns how many were claimed."""
        return await self._relay(
            lambda session: jobs.claim_unpublished(session, BATCH), "published by the gateway"
        )

    async def resend_stale(self) -> int:
        seconds = int(self._stale_after.total_seconds())
        return await self._relay(
            lambda session: jobs.claim_stale(session, self._stale_after, BATCH),
            f"sent again: untouched for {seconds} s",
        )

    async def _relay(self, claim: Claim, detail: str) -> int:
        async with self._db.transaction() as session:
            claimed = await claim(session)
            if not claimed:
                return 0
            outcomes = await self._publisher.publish_many(
                [generate_message(str(job_id)) for job_id in claimed]
            )
            sent = [job for job, failure in zip(claimed, outcomes, strict=True) if failure is None]
            if sent:
                await jobs.mark_enqueued(session, sent, detail)
        failed = [failure for failure in outcomes if failure is not None]
        if failed:  # the rest stay in the outbox for the next round
            log.warning("%d of %d job(s) not published: %s", len(failed), len(claimed), failed[0])
            raise failed[0]
        return len(claimed)

    async def run(self) -> None:
        """Until cancelled: drain the outbox whenever woken (or every interval), and re-send
        stale jobs every interval. A failure (database or broker away) waits one interval."""
        next_sweep = 0.0
        while True:
            try:
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self._interval
                    await self.resend_stale()
                self._work.clear()
                while await self.publish_unpublished() == BATCH:
                    pass
                raise_if_cancelling()  # see core.aio: never wait again once asked to stop
                # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancellation
                # that arrives just as the event is set, and the relay would never stop.
                async with asyncio.timeout(max(0.0, next_sweep - time.monotonic())):
                    await self._work.wait()
            except TimeoutError:
                continue
            except PublishFailed:  # logged above; the broker may take a while to come back
                await asyncio.sleep(self._interval)
            except Exception as exc:  # the database away, most likely
                log.warning("outbox round failed: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(self._interval)
