"""Caller webhooks through real processes: the gateway (which sends them), the generation worker
(whose transitions cause them) and the Replicate mock, over real PostgreSQL and RabbitMQ, to a
real receiver in the test."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import standardwebhooks

from core.db import Database
from core.users import ensure_user
from testkit.webhooks import NEVER_ANSWER, ReceivedWebhook, WebhookReceiver, webhook_receiver

from .conftest import Starter, mock_call  # type: ignore[import-not-found]

pytestmark = pytest.mark.e2e

WAIT = 60.0
PUBLIC_URL = "https://media.example.com"
FAST_WEBHOOKS = {
    "GATEWAY_PUBLIC_URL": PUBLIC_URL,
    "GATEWAY_WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver is on 127.0.0.1
    "GATEWAY_WEBHOOK_POLL_INTERVAL_SECONDS": "0.1",
    "GATEWAY_WEBHOOK_RETRY_MIN_SECONDS": "0.1",
    "GATEWAY_WEBHOOK_RETRY_MAX_SECONDS": "0.5",
    "GATEWAY_WEBHOOK_MAX_ATTEMPTS": "5",
}


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with webhook_receiver() as receiver:
        yield receiver


async def login(db: Database, base_url: str) -> httpx.AsyncClient:
    async with db.session() as session:
        await ensure_user(session=session, username="hana", password="password-123")
    http = httpx.AsyncClient(base_url=base_url, timeout=10)
    token = await http.post("/auth/token", data={"username": "hana", "password": "password-123"})
    http.headers["Authorization"] = f"Bearer {token.raise_for_status().json()['access_token']}"
    return http


async def submit(http: httpx.AsyncClient, webhook: str, **fields: Any) -> str:
    response = await http.post(
        "/generate", json={"prompt": "a kite over dunes", "webhook": webhook, **fields}
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


async def finished(http: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        while True:
            status: dict[str, Any] = (await http.get(f"/status/{job_id}")).json()
            if status["status"] in ("succeeded", "failed", "canceled"):
                return status
            await asyncio.sleep(0.1)


async def settled_deliveries(
    http: httpx.AsyncClient, job_id: str, count: int
) -> list[dict[str, Any]]:
    async with asyncio.timeout(WAIT):
        while True:
            items: list[dict[str, Any]] = (await http.get(f"/jobs/{job_id}/webhooks")).json()[
                "items"
            ]
            if len(items) == count and all(d["status"] != "pending" for d in items):
                return items
            await asyncio.sleep(0.1)


def verifies(received: ReceivedWebhook, key: str) -> bool:
    try:
        standardwebhooks.Webhook(key).verify(received.body, received.headers, json_parse=False)
    except standardwebhooks.WebhookVerificationError:
        return False
    return True


async def test_a_real_job_reaches_its_webhook_signed_and_retried_until_delivered(
    db: Database, start_gateway: Starter, start_worker: Starter, receiver: WebhookReceiver
) -> None:
    receiver.script("/completed", 500, 502, 200)
    with start_gateway(**FAST_WEBHOOKS) as gateway, start_worker():
        http = await login(db, gateway.base_url or "")
        key = (await http.get("/webhooks/default/secret")).json()["key"]
        retried = await submit(
            http, receiver.url("/completed"), webhook_events_filter=["completed"]
        )
        both = await submit(http, receiver.url("/both"))

        status = await finished(http, retried)
        assert status["status"] == "succeeded", status["last_error"]
        [delivery] = await settled_deliveries(http, retried, 1)
        await finished(http, both)
        shown_both = await settled_deliveries(http, both, 2)
        await http.aclose()

    assert (delivery["event"], delivery["status"]) == ("completed", "delivered")
    assert [(a["attempt"], a["status_code"]) for a in delivery["attempts"]] == [
        (1, 500),
        (2, 502),
        (3, 200),
    ]
    received = receiver.at("/completed")
    assert len(received) == 3
    assert {r.headers["webhook-id"] for r in received} == {delivery["webhook_id"]}
    assert all(verifies(r, key) for r in received)
    for r in received:  # the finished job, its media on GATEWAY_PUBLIC_URL
        assert {**r.json, "updated_at": None} == {**status, "updated_at": None} | {
            "media": [
                {**m, "url": f"{PUBLIC_URL}/media/{retried}/{m['index']}"} for m in status["media"]
            ]
        }

    assert [(d["event"], d["status"]) for d in shown_both] == [
        ("start", "delivered"),
        ("completed", "delivered"),
    ]
    by_status = {r.json["status"]: r for r in receiver.at("/both")}
    assert sorted(by_status) == ["running", "succeeded"]
    assert by_status["running"].headers["webhook-id"] == shown_both[0]["webhook_id"]
    assert by_status["succeeded"].headers["webhook-id"] == shown_both[1]["webhook_id"]
    assert all(verifies(r, key) for r in by_status.values())


async def test_a_receiver_that_never_answers_does_not_delay_the_job(
    db: Database,
    mock_url: str,
    start_gateway: Starter,
    start_worker: Starter,
    receiver: WebhookReceiver,
) -> None:
    receiver.script("/silent", NEVER_ANSWER, NEVER_ANSWER)
    # The prediction runs long enough for the `start` webhook to be under way meanwhile.
    mock_call(mock_url, "POST", "/_mock/faults", json={"latency_seconds": 2})
    slow_webhooks = {
        **FAST_WEBHOOKS,
        "GATEWAY_WEBHOOK_TIMEOUT_SECONDS": "120",
        "GATEWAY_WEBHOOK_CONCURRENCY": "1",  # and it takes the sender's only slot
    }
    with start_gateway(**slow_webhooks) as gateway, start_worker():
        http = await login(db, gateway.base_url or "")
        job_id = await submit(http, receiver.url("/silent"))
        [start] = await receiver.wait_for(lambda r: len(r) == 1, "/silent")
        assert start.json["status"] == "running"

        status = await finished(http, job_id)
        assert status["status"] == "succeeded", status["last_error"]
        # The job ended while its webhook was still waiting for an answer.
        assert receiver.hanging == 1
        shown = (await http.get(f"/jobs/{job_id}/webhooks")).json()["items"]
        await http.aclose()
        # Nor does it hold up a shutdown: SIGTERM ends the gateway cleanly, not the SIGKILL
        # that follows 10 s later (the delivery's lease lets another gateway take it).
        assert gateway.stop() != -signal.SIGKILL
        assert "Application shutdown complete." in gateway.stderr()
    assert [(d["event"], d["status"], d["attempts"]) for d in shown] == [
        ("start", "pending", []),
        ("completed", "pending", []),
    ]
