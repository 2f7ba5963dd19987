"""Hosted-queue features through real processes (gateway, generation worker, Replicate mock,
PostgreSQL, RabbitMQ): a deadline that fires while the prediction runs, a failed job retried
to success, priority under a backlog, and the rate limit held across two gateways."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import httpx
import pika
import pytest
from sqlalchemy import text

from core.db import Database

from .conftest import (  # type: ignore[import-not-found]
    Starter,
    mock_call,
    wait_for_status,
    wait_until,
)
from .test_e2e_generation import login  # type: ignore[import-not-found]

pytestmark = pytest.mark.e2e


async def scalar(db: Database, statement: str, **params: object) -> object:
    async with db.session() as session:
        return (await session.execute(text(statement), params)).scalar_one()


async def test_a_deadline_cancels_the_running_job_and_its_prediction(
    db: Database, mock_url: str, start_gateway: Starter, start_worker: Starter
) -> None:
    mock_call(mock_url, "POST", "/_mock/faults", json={"latency_seconds": 60})
    with start_gateway() as gateway, start_worker():
        http = await login(db, gateway.base_url)
        accepted = http.post(
            "/generate", json={"prompt": "a slow sunrise"}, headers={"Cancel-After": "5s"}
        )
        job_id = accepted.json()["job_id"]
        wait_for_status(http, job_id, {"running"}, timeout=30)
        status = wait_for_status(http, job_id, {"canceled", "succeeded", "failed"}, timeout=30)
    assert (status["status"], status["cancel_reason"]) == ("canceled", "deadline")
    prediction_id = await scalar(db, "SELECT prediction_id FROM jobs WHERE id = :id", id=job_id)

    def prediction_canceled() -> bool:
        prediction = mock_call(mock_url, "GET", f"/v1/predictions/{prediction_id}")
        return bool(prediction["status"] == "canceled")

    wait_until(prediction_canceled, "the prediction canceled at Replicate")
    finished = datetime.fromisoformat(status["finished_at"])
    deadline = datetime.fromisoformat(status["deadline_at"])
    assert finished >= deadline


async def test_a_failed_job_retried_succeeds(
    db: Database, mock_url: str, start_gateway: Starter, start_worker: Starter
) -> None:
    mock_call(mock_url, "POST", "/_mock/faults", json={"next": {"create": ["fail"]}})
    with start_gateway() as gateway, start_worker():
        http = await login(db, gateway.base_url)
        job_id = http.post("/generate", json={"prompt": "second time lucky"}).json()["job_id"]
        failed = wait_for_status(http, job_id, {"succeeded", "failed"})
        assert failed["status"] == "failed"

        retried = http.post(f"/jobs/{job_id}/retry")
        assert retried.status_code == 202
        assert retried.json()["retries"] == 1
        status = wait_for_status(http, job_id, {"succeeded", "failed"})
    assert status["status"] == "succeeded", status["last_error"]
    assert (status["attempts"], status["retries"], status["last_error"]) == (1, 1, None)
    assert len(status["media"]) == 1


async def test_a_high_priority_job_overtakes_a_backlog_of_low_ones(
    db: Database, start_gateway: Starter, start_worker: Starter
) -> None:
    with start_gateway() as gateway:
        http = await login(db, gateway.base_url)
        low = [
            http.post("/generate", json={"prompt": f"low {n}", "priority": "low"}).json()["job_id"]
            for n in range(12)
        ]
        high = http.post("/generate", json={"prompt": "urgent", "priority": "high"}).json()
        unpublished = "SELECT count(*) FROM jobs WHERE enqueued_at IS NULL"
        deadline = time.monotonic() + 10
        while await scalar(db, unpublished):  # the backlog waits in RabbitMQ, by priority
            assert time.monotonic() < deadline, "the relay did not publish in 10 s"
            await asyncio.sleep(0.05)
        with start_worker(GENERATION_THREADS="1"):
            started = {
                job_id: datetime.fromisoformat(
                    wait_for_status(http, job_id, {"succeeded", "failed"})["started_at"]
                )
                for job_id in [*low, high["job_id"]]
            }
    # The worker holds at most a couple of messages it took before: none of those is low here,
    # since the high one was waiting when it started; so it starts first.
    assert min(started, key=started.__getitem__) == high["job_id"]


async def test_the_rate_limit_holds_across_two_gateways(
    db: Database, start_gateway: Starter
) -> None:
    limit = {"GATEWAY_RATE_LIMIT_PER_MINUTE": "4"}
    with start_gateway(**limit) as one, start_gateway(**limit) as two:
        first, second = await login(db, one.base_url), await login(db, two.base_url)
        for _ in range(2):  # a minute boundary in the middle resets the count: once more
            window = await scalar(db, "SELECT date_trunc('minute', now())")
            answers: list[httpx.Response] = []
            for n in range(6):
                answers.append((first, second)[n % 2].post("/generate", json={"prompt": f"{n}"}))
            if await scalar(db, "SELECT date_trunc('minute', now())") == window:
                break
    assert [a.status_code for a in answers] == [202, 202, 202, 202, 429, 429]
    assert 1 <= int(answers[-1].headers["Retry-After"]) <= 60
    assert "4 creates per minute" in answers[-1].json()["detail"]


async def test_jobs_run_on_quorum_queues(
    db: Database, own_broker_url: str, start_gateway: Starter, start_worker: Starter
) -> None:
    # A vhost of its own: the other tests' classic queues cannot be redeclared as quorum.
    quorum_url = own_broker_url
    settings = {"BROKER_URL": quorum_url, "BROKER_QUORUM_QUEUES": "true"}
    with start_gateway(**settings) as gateway, start_worker(**settings):
        http = await login(db, gateway.base_url)
        job_id = http.post("/generate", json={"prompt": "replicated", "priority": "high"}).json()[
            "job_id"
        ]
        status = wait_for_status(http, job_id, {"succeeded", "failed"})
    assert status["status"] == "succeeded", status["last_error"]
    connection = pika.BlockingConnection(pika.URLParameters(quorum_url))
    try:
        channel = connection.channel()
        for queue in ("generation", "generation.DQ", "generation_poll", "generation_poll.DQ"):
            # Redeclaring with the same arguments succeeds only if the queue is a quorum queue.
            channel.queue_declare(
                queue,
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": queue.removesuffix(".DQ") + ".XQ",
                },
            )
    finally:
        connection.close()


# With DB_PREPARED_STATEMENT_CACHE=true instead, the job fails ("prepared statement ... does
# not exist"): checked by hand when this test was written.
async def test_the_services_work_behind_pgbouncer_in_transaction_mode(
    db: Database,
    database_url: str,
    pgbouncer_url: str,
    start_gateway: Starter,
    start_worker: Starter,
) -> None:
    pooled = {
        "DATABASE_URL": pgbouncer_url,
        "DB_PREPARED_STATEMENT_CACHE": "false",
        # The one LISTEN connection needs a session of its own: past the pooler.
        "GATEWAY_LISTEN_DATABASE_URL": database_url,
    }
    with start_gateway(**pooled) as gateway, start_worker(**pooled):
        http = await login(db, gateway.base_url)
        job_id = http.post("/generate", json={"prompt": "pooled"}).json()["job_id"]
        status = wait_for_status(http, job_id, {"succeeded", "failed"})
        waited = http.post("/generate", json={"prompt": "waited"}, headers={"Prefer": "wait=30"})
    assert status["status"] == "succeeded", status["last_error"]
    assert waited.status_code == 200, waited.text  # live status through the direct LISTEN
    assert waited.json()["status"] == "succeeded"
    assert "prepared statement" not in gateway.stderr()
