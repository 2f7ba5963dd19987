"""Queue position, `Prefer: wait` and the event stream's edges, in process against the real
PostgreSQL; the test plays the worker through core.jobs, so every change reaches the gateway
the way a worker's does: a committed UPDATE, its NOTIFY, the gateway's listener.

(Streams that stay open need a real server: tests/test_e2e_live_status.py.)"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from core import jobs
from core.db import Database
from gateway.job_changes import JobChanges
from gateway.settings import GatewaySettings

from .conftest import unpublished


async def post_job(http: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> httpx.Response:
    return await http.post("/generate", json={"prompt": "a fox", **body}, headers=headers)


async def status_of(http: httpx.AsyncClient, headers: dict[str, str], job_id: str) -> Any:
    return (await http.get(f"/status/{job_id}", headers=headers)).raise_for_status().json()


async def newest_job(db: Database, deadline: float = 10) -> uuid.UUID:
    """The id of the job a pending POST /generate stored, once it is stored."""
    until = time.monotonic() + deadline
    while True:
        async with db.session() as session:
            query = text("SELECT id FROM jobs ORDER BY created_at DESC LIMIT 1")
            job_id = (await session.execute(query)).scalar_one_or_none()
        if job_id is not None:
            return uuid.UUID(str(job_id))
        assert time.monotonic() < until, "the job was not stored"
        await asyncio.sleep(0.02)


async def run_to_success(db: Database, job_id: uuid.UUID) -> None:
    """What the worker does for a job that succeeds, one core.jobs statement at a time."""
    media = jobs.MediaFile(0, f"generations/{job_id}/0.png", "image/png", 3, "ab" * 32, "u")
    async with db.session() as session:
        await jobs.begin_attempt(session, job_id)
        assert await jobs.mark_running(session, job_id, f"p-{job_id}", "created")
        await jobs.record_progress(session, job_id, "Using seed: 1\n 50%| 2/4", 0.5)
        assert await jobs.mark_succeeded(session, job_id, [media])


def sse_events(body: str) -> list[dict[str, Any]]:
    """The events of a finished event stream: event name, id (if any) and parsed data."""
    events = []
    for block in body.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            if name in ("event", "id", "data"):
                fields[name] = value
        if "event" in fields:
            fields["data"] = json.loads(fields["data"])
            events.append(fields)
    return events


# --- queue position ---------------------------------------------------------------------------


async def test_queue_position_orders_by_priority_then_age_and_shrinks(
    client: httpx.AsyncClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    """No worker runs: a backlog. High jobs go first, then older before newer."""
    low = (await post_job(client, alice, priority="low")).json()["job_id"]
    normal_1 = (await post_job(client, bob)).json()["job_id"]
    normal_2 = (await post_job(client, alice)).json()["job_id"]
    high = (await post_job(client, bob, priority="high")).json()["job_id"]
    owners = {low: alice, normal_1: bob, normal_2: alice, high: bob}

    async def positions() -> dict[str, int | None]:
        return {
            job: (await status_of(client, owner, job))["queue_position"]
            for job, owner in owners.items()
        }

    assert await positions() == {high: 0, normal_1: 1, normal_2: 2, low: 3}
    for job in (high, normal_1):  # taken (here: canceled) one after the other
        response = await client.post(f"/jobs/{job}/cancel", headers=owners[job])
        assert response.json()["queue_position"] is None  # only a queued job has a place
    assert await positions() == {high: None, normal_1: None, normal_2: 0, low: 1}


# --- Prefer: wait -----------------------------------------------------------------------------


async def test_prefer_wait_answers_202_when_the_job_does_not_finish_in_time(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    response = await post_job(client, {**alice, "Prefer": "wait=1"})
    assert response.status_code == 202
    assert response.headers["Preference-Applied"] == "wait=1"
    assert response.json()["status"] == "queued"
    assert response.headers["Location"] == response.json()["status_url"]


async def test_prefer_wait_answers_the_finished_job(
    client: httpx.AsyncClient, alice: dict[str, str], db: Database
) -> None:
    pending = asyncio.create_task(post_job(client, {**alice, "Prefer": "wait"}))
    job_id = await newest_job(db)
    await run_to_success(db, job_id)
    response = await pending
    assert response.status_code == 200, response.text
    assert response.headers["Preference-Applied"] == "wait"  # echoed as sent, like Replicate
    body = response.json()
    assert body == await status_of(client, alice, str(job_id))  # as GET /status shows it
    assert body["status"] == "succeeded"
    assert [m["index"] for m in body["media"]] == [0]


@pytest.mark.parametrize(
    "prefer", ["respond-async", "wait=0", "wait=61", "wait=abc", "wait=", "waits", "return=minimal"]
)
async def test_other_preferences_are_ignored(
    client: httpx.AsyncClient, alice: dict[str, str], prefer: str
) -> None:
    response = await post_job(client, {**alice, "Prefer": prefer})
    assert response.status_code == 202
    assert "Preference-Applied" not in response.headers


async def test_wait_is_found_among_several_preferences(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    response = await post_job(client, {**alice, "Prefer": "respond-async, wait=1"})
    assert response.status_code == 202
    assert response.headers["Preference-Applied"] == "wait=1"


async def test_a_replayed_finished_job_is_answered_at_once(
    client: httpx.AsyncClient, alice: dict[str, str], db: Database
) -> None:
    first = await post_job(client, {**alice, "Idempotency-Key": "k-1"})
    job_id = first.json()["job_id"]
    await run_to_success(db, uuid.UUID(job_id))
    again = await post_job(client, {**alice, "Idempotency-Key": "k-1", "Prefer": "wait=60"})
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == job_id
    assert again.json()["status"] == "succeeded"


# --- GET /jobs/{id}/events: what is decided before a stream starts ----------------------------


async def test_events_of_another_callers_job_are_404(
    client: httpx.AsyncClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    job_id = (await post_job(client, alice)).json()["job_id"]
    response = await client.get(f"/jobs/{job_id}/events", headers=bob)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    missing = await client.get(f"/jobs/{uuid.uuid4()}/events", headers=alice)
    assert missing.status_code == 404


async def test_a_malformed_last_event_id_is_422(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    job_id = (await post_job(client, alice)).json()["job_id"]
    response = await client.get(f"/jobs/{job_id}/events", headers={**alice, "Last-Event-ID": "abc"})
    assert response.status_code == 422


async def test_a_finished_jobs_stream_is_its_state_then_the_end(
    client: httpx.AsyncClient, alice: dict[str, str], db: Database
) -> None:
    job_id = (await post_job(client, alice)).json()["job_id"]
    # The relay's `enqueued` entry first: no history may be added after the first stream.
    deadline = time.monotonic() + 10
    while await unpublished(db):
        assert time.monotonic() < deadline, "the outbox relay did not publish in 10 s"
        await asyncio.sleep(0.02)
    await run_to_success(db, uuid.UUID(job_id))
    response = await client.get(f"/jobs/{job_id}/events", headers=alice)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    [event] = sse_events(response.text)
    assert event["event"] == "status"
    assert event["data"] == await status_of(client, alice, job_id)

    # Resumed from an earlier event: the history after it, then the state, then the end.
    async with db.session() as session:
        query = text("SELECT id, kind FROM job_events WHERE job_id = :id ORDER BY id")
        history = (await session.execute(query, {"id": job_id})).all()
    assert event["id"] == str(history[-1].id)
    created = history[0].id
    resumed = await client.get(
        f"/jobs/{job_id}/events", headers={**alice, "Last-Event-ID": str(created)}
    )
    events = sse_events(resumed.text)
    changes = [e for e in events if e["event"] == "change"]
    assert [int(e["id"]) for e in changes] == [row.id for row in history[1:]]
    assert [e["data"]["kind"] for e in changes] == [row.kind for row in history[1:]]
    assert events[-1]["event"] == "status"
    assert events[-1]["data"]["status"] == "succeeded"

    # Resumed after the last event of a finished job: nothing more, and EventSource stops.
    done = await client.get(
        f"/jobs/{job_id}/events", headers={**alice, "Last-Event-ID": event["id"]}
    )
    assert done.status_code == 204


# --- the listener -----------------------------------------------------------------------------


async def test_the_listener_reconnects_and_wakes_every_waiter(
    settings: GatewaySettings, db: Database, client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    job_id = uuid.UUID((await post_job(client, alice)).json()["job_id"])
    name = f"listener-test-{uuid.uuid4().hex[:8]}"
    changes = JobChanges(settings, application_name=name)
    listening = asyncio.create_task(changes.run())
    try:
        async with asyncio.timeout(10):
            await changes.connected.wait()
        with changes.watching(job_id) as watch:
            async with db.session() as session:  # the database drops the connection
                await session.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name = :name"
                    ),
                    {"name": name},
                )
            # Notifications sent meanwhile were lost: every waiter is woken to look again.
            assert await watch.wait(20)
            assert changes.connected.is_set()
            watch.clear()
            async with db.session() as session:
                await jobs.cancel(session, job_id, (await owner_of(db, job_id)))
            assert await watch.wait(10)  # and changes arrive over the new connection
        assert changes.watched == 0
    finally:
        listening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await listening


async def owner_of(db: Database, job_id: uuid.UUID) -> uuid.UUID:
    async with db.session() as session:
        query = text("SELECT owner_id FROM jobs WHERE id = :id")
        return uuid.UUID(str((await session.execute(query, {"id": job_id})).scalar_one()))
