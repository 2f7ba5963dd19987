"""Periodic upkeep that no request waits for: deadlines, media expiry, old rate windows.

Every GATEWAY_SWEEP_INTERVAL_SECONDS each gateway:
- cancels unfinished jobs whose Cancel-After deadline passed (one statement, rows locked with
  SKIP LOCKED so replicas share the work), and asks the worker to cancel their predictions at
  Replicate (a message on RabbitMQ: the services talk only through the broker);
- with GATEWAY_MEDIA_TTL_SECONDS set, deletes media older than that from storage first and
  then records them expired (a crash in between deletes again: deleting twice is safe);
- forgets rate-limit windows older than two minutes.
A job is canceled at most one interval after its deadline.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from core import jobs, rate_limits
from core.aio import raise_if_cancelling
from core.amqp import AmqpPublisher
from core.db import Database
from core.messaging import cancel_message
from core.storage import MediaStorage
from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

BATCH = 500


class Housekeeper:
    def __init__(
        self,
        db: Database,
        publisher: AmqpPublisher,
        storage: MediaStorage,
        settings: GatewaySettings,
    ) -> None:
        self._db = db
        self._publisher = publisher
        self._storage = storage
        self._interval = settings.gateway_sweep_interval_seconds
        ttl = settings.gateway_media_ttl_seconds
        self._media_ttl = timedelta(seconds=ttl) if ttl > 0 else None

    async def cancel_overdue(self) -> int:
        """Cancel one batch of jobs past their deadline; how many."""
        async with self._db.session() as session:
            canceled = await jobs.cancel_overdue(session, BATCH)
        with_prediction = [job_id for job_id, has_prediction in canceled if has_prediction]
        if with_prediction:
            outcomes = await self._publisher.publish_many(
                [cancel_message(str(job_id)) for job_id in with_prediction]
            )
            if failed := [failure for failure in outcomes if failure is not None]:
                # The worker's next poll of the prediction cancels it instead.
                log.warning("%d cancel message(s) not published: %s", len(failed), failed[0])
        return len(canceled)

    async def expire_media(self) -> int:
        """Delete one batch of media older than the TTL; how many."""
        if self._media_ttl is None:
            return 0
        async with self._db.session() as session:
            expiring = await jobs.expiring_media(session, self._media_ttl, BATCH)
        deleted = []
        for media in expiring:
            try:
                await self._storage.delete(media.storage_key)
            except Exception as exc:  # storage away: the next round tries again
                log.warning("media %s not deleted: %s", media.storage_key, exc)
                break
            deleted.append(media)
        if deleted:
            async with self._db.session() as session:
                await jobs.mark_media_expired(session, deleted)
        cut_short = len(deleted) < len(expiring)  # storage failed: this round ends here
        return 0 if cut_short else len(deleted)

    async def prune_rate_windows(self) -> None:
        async with self._db.session() as session:
            await rate_limits.prune(session)

    async def run(self) -> None:
        while True:
            try:
                while await self.cancel_overdue() == BATCH:
                    pass
                while await self.expire_media() == BATCH:
                    pass
                await self.prune_rate_windows()
            except Exception as exc:  # the database away, most likely: next interval
                log.warning("housekeeping failed: %s: %s", type(exc).__name__, exc)
            raise_if_cancelling()
            await asyncio.sleep(self._interval)
