"""What the gateway's routes get from the app: one typed object, one dependency."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from core import jobs
from core.amqp import AmqpPublisher
from core.batching import Batcher, statement_batcher
from core.db import Database
from core.storage import MediaStorage
from gateway.job_changes import JobChanges
from gateway.outbox import OutboxRelay
from gateway.settings import GatewaySettings
from gateway.webhook_secret import WebhookSecret
from gateway.webhook_sender import WebhookSender


@dataclass(frozen=True, slots=True)
class Gateway:
    """The process's resources, made in the app's lifespan."""

    settings: GatewaySettings
    db: Database
    relay: OutboxRelay
    # The relay's publisher, shared: cancel messages, and Replicate's webhooks for the worker.
    publisher: AmqpPublisher
    storage: MediaStorage
    # POST /generate's rate-limit count and INSERT: the jobs of concurrent requests go in one
    # statement (core.jobs.admit_many).
    intake: Batcher[jobs.NewJob, jobs.Admission]
    # Wakes event streams and `Prefer: wait` requests when their job changes (any process).
    changes: JobChanges
    # What POST /webhooks/replicate verifies Replicate's deliveries with.
    webhook_secret: WebhookSecret
    # Caller webhooks: delivers what the job transitions recorded (woken by a cancel here).
    webhooks: WebhookSender


def job_intake(db: Database, rate_limit: int) -> Batcher[jobs.NewJob, jobs.Admission]:
    return statement_batcher(db, functools.partial(jobs.admit_many, rate_limit=rate_limit))


async def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(_gateway)]
