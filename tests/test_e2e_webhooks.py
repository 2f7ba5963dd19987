"""Replicate webhooks through real processes: the mock signs and sends them to the gateway,
the gateway verifies them and hands them over RabbitMQ to the worker, which finishes the job
with them. The fallback poll is set an hour away, so a job that finishes did so through its
webhook; the mock's counters show no prediction was ever fetched."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlmodel import col, select

from core.db import Database
from core.models import Job, JobEvent
from testkit.processes import ServiceProcess, free_port

from .conftest import Starter, mock_call, wait_for_status  # type: ignore[import-not-found]
from .test_e2e_generation import check_media, login  # type: ignore[import-not-found]

pytestmark = pytest.mark.e2e

NO_POLL = {"GENERATION_WEBHOOK_POLL_INTERVAL_SECONDS": "3600"}


def webhook_worker_env(gateway_url: str, **more: str) -> dict[str, str]:
    return {"REPLICATE_WEBHOOK_BASE_URL": gateway_url, **NO_POLL, **more}


def counters(mock_url: str) -> dict[str, Any]:
    stats = mock_call(mock_url, "GET", "/_mock/stats")
    delivered = stats["webhooks"]["deliveries"]
    return {
        "created": stats["predictions_created"],
        "gets": stats["calls"].get("get", 0),
        "lists": stats["calls"].get("list", 0),
        "completed": delivered.get("completed", {}).get("delivered", 0),
        "start": delivered.get("start", {}).get("delivered", 0),
        "webhooks": sum(event.get("delivered", 0) for event in delivered.values()),
    }


def messages_taken(worker: ServiceProcess) -> dict[str, dict[str, int]]:
    """The counts of the worker's "worker stopped" line (generation_worker.message_counts)."""
    for line in worker.stderr().splitlines():
        entry = json.loads(line)
        if entry["msg"] == "worker stopped":
            counts: dict[str, dict[str, int]] = entry["messages"]
            return counts
    raise AssertionError(f"the worker did not log its stop:\n{worker.stderr()}")


async def how_it_got_its_prediction(db: Database, job_id: str) -> str | None:
    """The detail of the job's queued -> running event: `prediction <id> (<how>)`."""
    async with db.session() as session:
        job = await session.get(Job, uuid.UUID(job_id))
        assert job is not None
        query = select(JobEvent.detail).where(
            JobEvent.job_id == job.id, col(JobEvent.to_status) == "running"
        )
        detail = (await session.exec(query)).one()
        assert detail is not None
        return detail.removeprefix(f"prediction {job.prediction_id} ")


async def test_a_job_finishes_through_its_webhook(
    db: Database,
    mock_url: str,
    own_broker_url: str,
    start_gateway: Starter,
    start_worker: Starter,
) -> None:
    before = counters(mock_url)
    # A vhost of its own: the worker's message counts are this job's alone (other tests leave
    # jobs queued in the session's vhost).
    broker = {"BROKER_URL": own_broker_url}
    with (
        start_gateway(**broker) as gateway,
        start_worker(**webhook_worker_env(gateway.base_url, **broker)) as worker,
    ):
        http = await login(db, gateway.base_url)
        accepted = http.post("/generate", json={"prompt": "a kite over dunes"})
        assert accepted.status_code == 202
        job_id = accepted.json()["job_id"]
        status = wait_for_status(http, job_id, {"succeeded", "failed"}, timeout=30)
        assert status["status"] == "succeeded", status["last_error"]
        check_media(http, status, count=1, ext="webp")
    after = counters(mock_url)
    assert after["created"] - before["created"] == 1
    assert after["gets"] == before["gets"]  # never polled: the webhook finished it
    assert after["completed"] - before["completed"] == 1
    assert after["start"] - before["start"] == 1
    assert await how_it_got_its_prediction(db, job_id) == "(created)"
    # Every delivered webhook reached the worker through the gateway and RabbitMQ; the one
    # poll (an hour away) was only taken onto the worker's delay queue.
    taken = messages_taken(worker)
    assert taken["processed"] == {
        "generate_media": 1,
        "prediction_webhook": after["webhooks"] - before["webhooks"],
    }
    assert taken["delayed"] == {"poll_generation": 1}


async def test_a_lost_create_is_recovered_by_its_webhook(
    db: Database, mock_url: str, start_gateway: Starter, start_worker: Starter
) -> None:
    # The prediction is made but the worker gets a 500; its retry is a minute away, so only
    # the prediction's webhook can bring the job its prediction.
    mock_call(mock_url, "POST", "/_mock/faults", json={"next": {"create": ["500_after_create"]}})
    later = {"RETRY_MIN_BACKOFF_MS": "60000", "RETRY_MAX_BACKOFF_MS": "120000"}
    before = counters(mock_url)
    with start_gateway() as gateway, start_worker(**webhook_worker_env(gateway.base_url, **later)):
        http = await login(db, gateway.base_url)
        job_id = http.post("/generate", json={"prompt": "a lost letter"}).json()["job_id"]
        status = wait_for_status(http, job_id, {"succeeded", "failed"}, timeout=30)
    assert status["status"] == "succeeded", status["last_error"]
    assert status["attempts"] == 1  # no retry ran
    after = counters(mock_url)
    assert after["created"] - before["created"] == 1  # one prediction, paid once
    assert after["gets"] == before["gets"]
    assert after["lists"] == before["lists"]  # not found by the retry's search either
    assert await how_it_got_its_prediction(db, job_id) == "(recovered by webhook)"


async def test_polling_finishes_a_job_whose_webhooks_never_arrive(
    db: Database, mock_url: str, start_gateway: Starter, start_worker: Starter
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # Replicate cannot reach the gateway
    before = counters(mock_url)
    with (
        start_gateway() as gateway,
        start_worker(
            REPLICATE_WEBHOOK_BASE_URL=nowhere, GENERATION_WEBHOOK_POLL_INTERVAL_SECONDS="1"
        ),
    ):
        http = await login(db, gateway.base_url)
        job_id = http.post("/generate", json={"prompt": "a message in a bottle"}).json()["job_id"]
        status = wait_for_status(http, job_id, {"succeeded", "failed"}, timeout=30)
    assert status["status"] == "succeeded", status["last_error"]
    assert counters(mock_url)["gets"] > before["gets"]
