"""What the gateway's routes get from the app: one typed object, one dependency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from core import jobs
from core.batching import Batcher, statement_batcher
from core.db import Database
from core.storage import MediaStorage
from gateway.outbox import OutboxRelay
from gateway.settings import GatewaySettings
from gateway.webhook_sender import WebhookSender


@dataclass(frozen=True, slots=True)
class Gateway:
    """The process's resources, made in the app's lifespan."""

    settings: GatewaySettings
    db: Database
    relay: OutboxRelay
    storage: MediaStorage
    # POST /generate's INSERTs: the jobs of concurrent requests go in one statement.
    intake: Batcher[jobs.NewJob, bool]
    webhooks: WebhookSender


def job_intake(db: Database) -> Batcher[jobs.NewJob, bool]:
    return statement_batcher(db, jobs.insert_many)


async def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(_gateway)]
