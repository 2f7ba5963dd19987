"""Deadlines (Cancel-After), retry, priority, rate limit and media expiry, through the gateway
app on real PostgreSQL, RabbitMQ and storage (the worker's side is in tests/ end to end)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pika
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from core import jobs
from core.db import Database
from core.storage import MediaNotFound, create_storage
from gateway.deps import Gateway
from gateway.housekeeping import Housekeeper
from gateway.settings import GatewaySettings
from testkit.s3 import S3Endpoint

from .conftest import Published, drain_queue_safe, serving, token_for
from .test_gateway_jobs import store_finished_media


def queued_messages(broker_url: str, queue: str) -> list[tuple[int | None, dict[str, Any]]]:
    """Take every message waiting in `queue`, in delivery order, with its AMQP priority."""
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        channel, taken = connection.channel(), []
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return taken
            taken.append((properties.priority, json.loads(body)))
    finally:
        connection.close()


async def sql(db: Database, statement: str, **params: Any) -> Any:
    async with db.session() as session:
        result = await session.execute(text(statement), params)
        return result.all() if result.returns_rows else None


def housekeeper(app: FastAPI, settings: GatewaySettings) -> Housekeeper:
    gateway: Gateway = app.state.gateway
    return Housekeeper(gateway.db, gateway.publisher, gateway.storage, settings)


# --- Cancel-After ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"), [("30s", 30), ("5m", 300), ("1h30m", 5400), ("90", 90), ("2", 5)]
)
async def test_cancel_after_sets_the_deadline_in_replicates_syntax(
    client: httpx.AsyncClient, alice: dict[str, str], header: str, seconds: int
) -> None:
    before = datetime.now(UTC)
    accepted = await client.post(
        "/generate", json={"prompt": "soon"}, headers={**alice, "Cancel-After": header}
    )
    assert accepted.status_code == 202, accepted.text
    status = (await client.get(accepted.json()["status_url"], headers=alice)).json()
    deadline = datetime.fromisoformat(status["deadline_at"])
    assert 0 <= (deadline - before).total_seconds() - seconds < 5


@pytest.mark.parametrize("header", ["5x", "1m1h", "-5", "", "1.5s", "s"])
async def test_a_malformed_cancel_after_is_a_422(
    client: httpx.AsyncClient, alice: dict[str, str], header: str
) -> None:
    response = await client.post(
        "/generate", json={"prompt": "soon"}, headers={**alice, "Cancel-After": header}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "Cancel-After"]


async def test_a_job_past_its_deadline_is_canceled_with_the_reason(
    settings: GatewaySettings, db: Database
) -> None:
    async with serving(settings) as (app, http):
        alice = await token_for(http, db, "alice")
        overdue, on_time = [
            (
                await http.post(
                    "/generate", json={"prompt": p}, headers={**alice, "Cancel-After": "1h"}
                )
            ).json()["job_id"]
            for p in ("late", "fine")
        ]
        await sql(
            db, "UPDATE jobs SET deadline_at = now() - interval '1 s' WHERE id = :id", id=overdue
        )
        assert await housekeeper(app, settings).cancel_overdue() == 1

        status = (await http.get(f"/status/{overdue}", headers=alice)).json()
        assert (status["status"], status["cancel_reason"]) == ("canceled", "deadline")
        assert status["finished_at"] is not None
        assert (await http.get(f"/status/{on_time}", headers=alice)).json()["status"] == "queued"
    [(detail,)] = await sql(
        db,
        "SELECT detail FROM job_events WHERE job_id = :id AND to_status = 'canceled'",
        id=overdue,
    )
    assert "deadline" in detail


async def test_a_caller_cancel_says_so(client: httpx.AsyncClient, alice: dict[str, str]) -> None:
    job_id = (await client.post("/generate", json={"prompt": "x"}, headers=alice)).json()["job_id"]
    canceled = (await client.post(f"/jobs/{job_id}/cancel", headers=alice)).json()
    assert (canceled["status"], canceled["cancel_reason"]) == ("canceled", "caller")


# --- retry -----------------------------------------------------------------------------------


async def test_a_failed_job_is_queued_again_with_a_new_attempt_budget(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    bob: dict[str, str],
    db: Database,
    broker_url: str,
    published: Published,
) -> None:
    job_id = (
        await client.post("/generate", json={"prompt": "x", "priority": "high"}, headers=alice)
    ).json()["job_id"]
    await published()
    async with db.session() as session:
        await jobs.begin_attempt(session, uuid.UUID(job_id))
        await jobs.mark_running(session, uuid.UUID(job_id), "old-prediction", "created")
        await jobs.mark_failed(session, uuid.UUID(job_id), "the model broke")

    assert (await client.post(f"/jobs/{job_id}/retry", headers=bob)).status_code == 404
    retried = await client.post(f"/jobs/{job_id}/retry", headers=alice)
    assert retried.status_code == 202, retried.text
    body = retried.json()
    assert (body["status"], body["attempts"], body["retries"], body["last_error"]) == (
        "queued",
        0,
        1,
        None,
    )
    [(priority, message)] = await published_with_priority(db, broker_url)
    assert message["args"] == [job_id]
    assert priority == 2  # still high
    [(retired, prediction)] = await sql(
        db, "SELECT retired_prediction_ids, prediction_id FROM jobs WHERE id = :id", id=job_id
    )
    assert (retired, prediction) == (["old-prediction"], None)
    [(from_status, detail)] = await sql(
        db,
        "SELECT from_status, detail FROM job_events WHERE job_id = :id AND kind = 'retry'",
        id=job_id,
    )
    assert from_status == "failed"
    assert "new attempt budget" in detail

    again = await client.post(f"/jobs/{job_id}/retry", headers=alice)
    assert again.status_code == 409
    assert "queued" in again.json()["detail"]


async def published_with_priority(
    db: Database, broker_url: str
) -> list[tuple[int | None, dict[str, Any]]]:
    deadline = time.monotonic() + 10
    while (await sql(db, "SELECT count(*) FROM jobs WHERE enqueued_at IS NULL"))[0][0]:
        assert time.monotonic() < deadline, "the relay did not publish in 10 s"
        await asyncio.sleep(0.02)
    return queued_messages(broker_url, "generation")


async def test_only_failed_or_canceled_jobs_can_be_retried(
    client: httpx.AsyncClient, alice: dict[str, str], db: Database
) -> None:
    job_id = (await client.post("/generate", json={"prompt": "x"}, headers=alice)).json()["job_id"]
    queued = await client.post(f"/jobs/{job_id}/retry", headers=alice)
    assert queued.status_code == 409
    await sql(db, "UPDATE jobs SET status = 'succeeded' WHERE id = :id", id=job_id)
    assert (await client.post(f"/jobs/{job_id}/retry", headers=alice)).status_code == 409
    await sql(db, "UPDATE jobs SET status = 'canceled' WHERE id = :id", id=job_id)
    assert (await client.post(f"/jobs/{job_id}/retry", headers=alice)).status_code == 202
    missing = await client.post(f"/jobs/{uuid.uuid4()}/retry", headers=alice)
    assert missing.status_code == 404


# --- priority --------------------------------------------------------------------------------


async def test_messages_carry_the_jobs_priority_and_high_is_delivered_first(
    client: httpx.AsyncClient, alice: dict[str, str], db: Database, broker_url: str
) -> None:
    drain_queue_safe(broker_url)
    ids = {}
    for priority in ["low", "low", "normal", "high", "low"]:
        response = await client.post(
            "/generate", json={"prompt": priority, "priority": priority}, headers=alice
        )
        ids.setdefault(priority, []).append(response.json()["job_id"])
    taken = await published_with_priority(db, broker_url)
    order = [message["args"][0] for _, message in taken]
    assert order[0] == ids["high"][0]
    assert order[1] == ids["normal"][0]
    assert sorted(order[2:]) == sorted(ids["low"])
    assert [priority for priority, _ in taken] == [2, 1, 0, 0, 0]


async def test_an_aged_low_job_is_sent_again_at_high_priority(
    make_settings: Callable[..., GatewaySettings],
    db: Database,
    broker_url: str,
) -> None:
    settings = make_settings(gateway_priority_aging_seconds=60)
    async with serving(settings) as (app, http):
        alice = await token_for(http, db, "alice")
        drain_queue_safe(broker_url)
        old = (
            await http.post("/generate", json={"prompt": "o", "priority": "low"}, headers=alice)
        ).json()["job_id"]
        young = (
            await http.post("/generate", json={"prompt": "y", "priority": "low"}, headers=alice)
        ).json()["job_id"]
        await published_with_priority(db, broker_url)
        await sql(
            db,
            "UPDATE jobs SET enqueued_at = now() - interval '2 minutes',"
            " updated_at = now() - interval '2 minutes' WHERE id = :id",
            id=old,
        )
        gateway: Gateway = app.state.gateway
        assert await gateway.relay.resend_aged() == 1
    [(priority, message)] = queued_messages(broker_url, "generation")
    assert (priority, message["args"]) == (2, [old])
    assert young != old
    [(detail,)] = await sql(
        db,
        "SELECT detail FROM job_events WHERE job_id = :id AND kind = 'enqueued'"
        " ORDER BY id DESC LIMIT 1",
        id=old,
    )
    assert "high priority" in detail


# --- rate limit ------------------------------------------------------------------------------


async def test_creates_over_the_rate_limit_get_429_with_retry_after(
    make_settings: Callable[..., GatewaySettings], db: Database
) -> None:
    async with serving(make_settings(gateway_rate_limit_per_minute=3)) as (_, http):
        alice, bob = await token_for(http, db, "alice"), await token_for(http, db, "bob")
        for _ in range(2):  # a minute boundary in the middle resets the count: once more
            window = await sql(db, "SELECT date_trunc('minute', now())")
            answers = await asyncio.gather(
                *(http.post("/generate", json={"prompt": "x"}, headers=alice) for _ in range(5))
            )
            if await sql(db, "SELECT date_trunc('minute', now())") == window:
                break
        codes = sorted(a.status_code for a in answers)
        assert codes == [202, 202, 202, 429, 429]
        refused = next(a for a in answers if a.status_code == 429)
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert "3 creates per minute" in refused.json()["detail"]
        # Per caller: bob is not limited by alice's creates.
        assert (await http.post("/generate", json={"prompt": "x"}, headers=bob)).status_code == 202


# --- media expiry ----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_expired_media_are_deleted_and_answer_410(
    backend: str, make_settings: Callable[..., GatewaySettings], db: Database, moto_s3: S3Endpoint
) -> None:
    storage_settings = {}
    if backend == "s3":  # the settings the S3 backend reads, as the env of a process would
        env = moto_s3.env(moto_s3.new_bucket())
        storage_settings = {key.lower(): value for key, value in env.items()}
    settings = make_settings(gateway_media_ttl_seconds=3600, **storage_settings)
    async with serving(settings) as (app, http):
        alice = await token_for(http, db, "alice")
        old, fresh = [
            (await http.post("/generate", json={"prompt": p}, headers=alice)).json()["job_id"]
            for p in ("old", "fresh")
        ]
        for job_id in (old, fresh):
            await store_finished_media(db, settings, job_id, b"\x89PNG\r\n\x1a\n" + b"x" * 100)
        await sql(
            db,
            "UPDATE job_media SET created_at = now() - interval '2 hours' WHERE job_id = :id",
            id=old,
        )
        [(key,)] = await sql(db, "SELECT storage_key FROM job_media WHERE job_id = :id", id=old)

        assert await housekeeper(app, settings).expire_media() == 1

        status = (await http.get(f"/status/{old}", headers=alice)).json()
        assert status["media"][0]["expired"] is True
        gone = await http.get(f"/media/{old}/0", headers=alice)
        assert gone.status_code == 410
        assert "expired" in gone.json()["detail"]
        kept = await http.get(f"/media/{fresh}/0", headers=alice)
        assert kept.status_code == 200
    storage = create_storage(settings)
    with pytest.raises(MediaNotFound):
        await storage.open_stream(key)
    await storage.close()
