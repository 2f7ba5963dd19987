"""The safety net behind "no accepted job is lost".

POST /generate commits the job before publishing, so a RabbitMQ outage cannot lose it; this
loop publishes what was never confirmed, and re-publishes queued or running jobs nobody has
touched for a long time (a message dead-lettered or lost with a broker). Redelivered messages
are harmless: the worker skips terminal jobs and resumes saved predictions.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

from sqlalchemy import and_, func, or_
from sqlmodel import col, select

from core.db import Database
from core.messaging import Publisher, generate_message
from core.models import Job, JobStatus
from gateway.jobs import mark_enqueued
from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

BATCH = 200


async def sweep_once(db: Database, publisher: Publisher, settings: GatewaySettings) -> int:
    """Publish one batch of jobs that need it; returns how many were published."""
    grace = timedelta(seconds=settings.gateway_unpublished_grace_seconds)
    stale = timedelta(seconds=settings.gateway_stale_job_seconds)
    published = 0
    async with db.session() as session:
        never_published = and_(
            col(Job.status) == JobStatus.queued.value,
            col(Job.enqueued_at).is_(None),
            col(Job.created_at) < func.now() - grace,
        )
        untouched = and_(
            col(Job.status).in_([JobStatus.queued.value, JobStatus.running.value]),
            col(Job.updated_at) < func.now() - stale,
        )
        rows = await session.exec(
            select(Job.id)
            .where(or_(never_published, untouched))
            .order_by(col(Job.updated_at))
            .limit(BATCH)
            .with_for_update(skip_locked=True)  # several gateways never publish one job twice
        )
        job_ids: list[uuid.UUID] = list(rows.all())
        sent: list[uuid.UUID] = []
        for job_id in job_ids:
            try:
                await publisher.send(
                    generate_message(str(job_id)),
                    timeout=settings.gateway_publish_timeout_seconds,
                )
            except Exception as exc:
                log.warning("sweeper could not publish: %s", exc.__class__.__name__)
                break
            sent.append(job_id)
        if sent:
            # Also bumps updated_at (the column's onupdate), restarting the stale clock.
            await mark_enqueued(session=session, job_ids=sent, detail="published by the sweeper")
            published = len(sent)
        else:
            await session.rollback()
    if published:
        log.info("sweeper published %d job(s)", published)
    return published


async def run_sweeper(db: Database, publisher: Publisher, settings: GatewaySettings) -> None:
    while True:
        try:
            while await sweep_once(db, publisher, settings) == BATCH:
                pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a DB outage: try again next round
            log.warning("sweeper round failed: %s: %s", exc.__class__.__name__, exc)
        await asyncio.sleep(settings.gateway_sweep_interval_seconds)
