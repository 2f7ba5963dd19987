from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pika
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from core.db import Database
from core.users import ensure_user
from gateway.app import create_app
from gateway.settings import GatewaySettings

JWT_SECRET = "gateway-tests-secret-0123456789abcdef"


@pytest.fixture
def make_settings(
    database_url: str, broker_url: str, tmp_path: Path
) -> Callable[..., GatewaySettings]:
    def make(**overrides: Any) -> GatewaySettings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "broker_url": broker_url,
            "storage_backend": "local",
            "storage_local_root": str(tmp_path / "media"),
            "jwt_secret": JWT_SECRET,
            "gateway_sweep_interval_seconds": 3600,  # tests drive the stale re-sends themselves
        }
        values.update(overrides)
        return GatewaySettings(**values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., GatewaySettings]) -> GatewaySettings:
    return make_settings()


@contextlib.asynccontextmanager
async def serving(settings: GatewaySettings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The gateway app, started (its relay and housekeeping running), and a client for it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            yield app, http


@pytest.fixture
async def client(settings: GatewaySettings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(settings) as (_, http):
        yield http


async def token_for(http: httpx.AsyncClient, db: Database, username: str) -> dict[str, str]:
    async with db.session() as session:
        await ensure_user(session=session, username=username, password="password-123")
    response = await http.post(
        "/auth/token", data={"username": username, "password": "password-123"}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
async def alice(client: httpx.AsyncClient, db: Database) -> dict[str, str]:
    return await token_for(client, db, "alice")


@pytest.fixture
async def bob(client: httpx.AsyncClient, db: Database) -> dict[str, str]:
    return await token_for(client, db, "bob")


def drain_queue(broker_url: str, queue: str = "generation") -> list[dict[str, Any]]:
    """Take every message waiting in `queue` (a blocking pika call; fine in a test)."""
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        channel = connection.channel()
        messages = []
        while True:
            method, _props, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return messages
            messages.append(json.loads(body))
    finally:
        connection.close()


def drain_queue_safe(broker_url: str) -> None:
    with contextlib.suppress(pika.exceptions.ChannelClosedByBroker):  # queue not declared yet
        drain_queue(broker_url)


async def unpublished(db: Database) -> int:
    async with db.session() as session:
        query = text("SELECT count(*) FROM jobs WHERE enqueued_at IS NULL AND status = 'queued'")
        return int((await session.execute(query)).scalar_one())


Published = Callable[[], Awaitable[list[dict[str, Any]]]]


@pytest.fixture
def published(broker_url: str, db: Database) -> Published:
    """`await published()`: once the outbox relay has published every queued job (it runs
    after the 202), the messages waiting in the generation queue."""
    drain_queue_safe(broker_url)

    async def wait() -> list[dict[str, Any]]:
        deadline = time.monotonic() + 10
        while await unpublished(db):
            assert time.monotonic() < deadline, "the outbox relay did not publish in 10 s"
            await asyncio.sleep(0.02)
        return drain_queue(broker_url)

    return wait
