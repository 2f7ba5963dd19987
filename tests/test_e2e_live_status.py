"""Live status through real processes: event streams (GET /jobs/{id}/events) and `Prefer: wait`
on POST /generate, fed by the gateways' LISTEN on real PostgreSQL, with the generation worker
and the Replicate mock where a job must really run. Where a test needs exact control of the
changes it plays the worker itself through core.jobs (the worker's own statements)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from core import jobs
from core.db import Database

from .conftest import Starter, mock_call, wait_for_status, wait_until  # type: ignore[import-not-found]
from .test_e2e_generation import login  # type: ignore[import-not-found]

pytestmark = pytest.mark.e2e


@dataclass
class Event:
    event: str
    id: int | None
    data: dict[str, Any]


class EventReader:
    """Reads a text/event-stream response one event at a time (comments counted apart); every
    read has the client's read timeout as its deadline."""

    def __init__(self, response: httpx.Response) -> None:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        self._lines = response.iter_lines()
        self.comments = 0

    def next(self) -> Event | None:
        """The next event, or None when the server ended the stream."""
        fields: dict[str, str] = {}
        for line in self._lines:
            if line.startswith(":"):
                self.comments += 1
            elif line:
                name, _, value = line.partition(": ")
                fields[name] = value
            elif fields:
                event_id = fields.get("id")
                return Event(
                    fields["event"],
                    None if event_id is None else int(event_id),
                    json.loads(fields["data"]),
                )
        return None

    def keep_alive(self) -> None:
        """Read up to the next comment; an event before it fails the test."""
        for line in self._lines:
            if line.startswith(":"):
                self.comments += 1
                return
            assert not line, f"an event while nothing happened: {line}"
        raise AssertionError("the stream ended")

    def until_end(self) -> list[Event]:
        events = []
        while (event := self.next()) is not None:
            events.append(event)
        return events


@contextmanager
def follow(
    http: httpx.Client, job_id: str, last_event_id: int | None = None
) -> Iterator[EventReader]:
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    with http.stream("GET", f"/jobs/{job_id}/events", headers=headers) as response:
        yield EventReader(response)


async def history_after(db: Database, job_id: str, after: int) -> list[tuple[int, str]]:
    async with db.session() as session:
        rows = await session.execute(
            text("SELECT id, kind FROM job_events WHERE job_id = :id AND id > :after ORDER BY id"),
            {"id": job_id, "after": after},
        )
        return [(row.id, row.kind) for row in rows]


async def until_published(db: Database, job_id: str) -> None:
    """The outbox relay marked the job enqueued (a history entry of its own)."""
    deadline = time.monotonic() + 10
    query = text("SELECT enqueued_at IS NOT NULL FROM jobs WHERE id = :id")
    while True:
        async with db.session() as session:
            if (await session.execute(query, {"id": job_id})).scalar_one():
                return
        assert time.monotonic() < deadline, "the job was not published"
        await asyncio.sleep(0.05)


def statuses(events: list[Event]) -> list[str]:
    return [e.data["status"] for e in events if e.event == "status"]


def slow_predictions(mock_url: str, seconds: float) -> None:
    """Predictions take `seconds` (processing for the last three quarters of it)."""
    mock_call(mock_url, "POST", "/_mock/faults", json={"latency_seconds": seconds})


async def test_events_follow_a_job_from_queued_to_succeeded(
    db: Database, mock_url: str, start_gateway: Starter, start_worker: Starter
) -> None:
    slow_predictions(mock_url, 3)
    with start_gateway(GATEWAY_EVENTS_KEEPALIVE_SECONDS="0.5") as gateway:
        http = await login(db, gateway.base_url)
        job_id = http.post("/generate", json={"prompt": "a fox"}).json()["job_id"]
        with follow(http, job_id) as stream:
            first = stream.next()
            assert first is not None
            assert first.event == "status"
            assert first.data == http.get(f"/status/{job_id}").json()
            assert first.data["status"] == "queued"
            assert first.data["queue_position"] == 0
            assert first.id is not None
            stream.keep_alive()  # idle: a keep-alive comment, no event
            with start_worker():
                rest = stream.until_end()  # the stream ends by itself after the terminal event

    events = [first, *rest]
    shown = statuses(events)
    shown = [s for i, s in enumerate(shown) if i == 0 or shown[i - 1] != s]
    # A state is read when a change is announced, so a very short one may be skipped over;
    # the history entries (below) are never skipped.
    assert shown in (["queued", "running", "succeeded"], ["queued", "succeeded"])
    assert events[-1].event == "status"
    assert events[-1].data["media"]  # the final state, with its files
    changes = [e for e in events if e.event == "change"]
    assert [e.id for e in changes] == sorted(e.id for e in changes if e.id is not None)
    # Every history entry after the first state, each once, in order: nothing lost.
    assert [(e.id, e.data["kind"]) for e in changes] == await history_after(db, job_id, first.id)
    transitions = [e.data["to_status"] for e in changes if e.data["kind"] == "state"]
    assert transitions == ["running", "succeeded"]
    # Logs and progress while running, outside the history (no id: no resume point).
    logs = [e for e in events if e.event == "logs"]
    assert logs, "no logs event during a 3 s prediction"
    assert all(e.id is None for e in logs)
    assert all(e.data["logs"].startswith("Using seed: ") for e in logs)
    progress = [e.data["progress"] for e in logs if e.data["progress"] is not None]
    assert progress == sorted(progress)
    # After the first, a state follows the entries it reflects, with the newest one's id.
    for before, event in itertools.pairwise(events):
        if event.event == "status":
            assert (before.event, before.id) == ("change", event.id)


async def test_a_reconnect_resumes_after_the_last_event_id_then_goes_on_live(
    db: Database, start_gateway: Starter
) -> None:
    """No worker: the test makes the worker's changes itself, while no stream is open."""
    with start_gateway() as gateway:
        http = await login(db, gateway.base_url)
        job_id = http.post("/generate", json={"prompt": "a fox"}).json()["job_id"]
        await until_published(db, job_id)  # no entry of the relay's comes in between
        with follow(http, job_id) as stream:
            seen = stream.next()
        assert seen is not None
        assert seen.id is not None
        async with db.session() as session:  # while disconnected
            await jobs.begin_attempt(session, uuid.UUID(job_id))
            await jobs.mark_running(session, uuid.UUID(job_id), "p-resume", "created")

        with follow(http, job_id, last_event_id=seen.id) as stream:
            missed = []
            while (event := stream.next()) is not None and event.event == "change":
                missed.append(event)
            assert event is not None
            # Exactly the entries after the resume point, then the state as it is now.
            assert [(e.id, e.data["kind"]) for e in missed] == await history_after(
                db, job_id, seen.id
            )
            assert ("state", "running") in [(e.data["kind"], e.data["to_status"]) for e in missed]
            assert event.event == "status"
            assert event.data["status"] == "running"
            assert event.id == missed[-1].id

            # ... and then live.
            async with db.session() as session:
                await jobs.record_progress(session, uuid.UUID(job_id), "Using seed: 1\n", None)
            logs = stream.next()
            assert logs is not None
            assert (logs.event, logs.id, logs.data) == (
                "logs",
                None,
                {"logs": "Using seed: 1\n", "progress": None},
            )
            async with db.session() as session:
                await jobs.mark_failed(session, uuid.UUID(job_id), "boom")
            live = stream.until_end()
        assert [e.event for e in live] == ["change", "status"]
        assert live[0].data["to_status"] == "failed"
        assert live[1].data["status"] == "failed"
        assert live[1].data["last_error"] == "boom"


async def test_a_stream_on_one_gateway_sees_a_cancel_made_through_another(
    db: Database, start_gateway: Starter
) -> None:
    with start_gateway() as gateway_a, start_gateway() as gateway_b:
        http_a = await login(db, gateway_a.base_url)
        http_b = await login(db, gateway_b.base_url)
        job_id = http_a.post("/generate", json={"prompt": "a fox"}).json()["job_id"]
        await until_published(db, job_id)
        with follow(http_a, job_id) as stream:
            first = stream.next()
            assert first is not None
            assert first.data["status"] == "queued"
            assert http_b.post(f"/jobs/{job_id}/cancel").status_code == 200
            rest = stream.until_end()
    assert [(e.event, e.data.get("to_status") or e.data.get("status")) for e in rest] == [
        ("change", "canceled"),
        ("status", "canceled"),
    ]
    assert rest[1].data["cancel_reason"] in (None, "caller")


async def test_prefer_wait_answers_with_the_finished_job(
    db: Database, start_gateway: Starter, start_worker: Starter
) -> None:
    with start_gateway() as gateway, start_worker():
        http = await login(db, gateway.base_url)
        http.timeout = httpx.Timeout(40)
        response = http.post("/generate", json={"prompt": "a fox"}, headers={"Prefer": "wait=30"})
        assert response.status_code == 200, response.text
        assert response.headers["Preference-Applied"] == "wait=30"
        body = response.json()
        assert body["status"] == "succeeded", body["last_error"]
        assert body == http.get(f"/status/{body['id']}").json()
        assert http.get(body["media"][0]["url"]).status_code == 200


async def test_prefer_wait_times_out_with_202_and_a_client_leaving_ends_the_wait(
    db: Database, start_gateway: Starter
) -> None:
    """No worker runs, so nothing finishes."""
    with start_gateway() as gateway:
        http = await login(db, gateway.base_url)
        response = http.post("/generate", json={"prompt": "a fox"}, headers={"Prefer": "wait=1"})
        assert response.status_code == 202
        assert response.headers["Preference-Applied"] == "wait=1"
        assert response.json()["status"] == "queued"

        # A client that gives up after a second: the gateway stops waiting for it then, not
        # after the 60 s it asked for (its access line is written when the handler returns).
        with pytest.raises(httpx.ReadTimeout):
            http.post(
                "/generate",
                json={"prompt": "a wolf"},
                headers={"Prefer": "wait=60"},
                timeout=httpx.Timeout(10, read=1),
            )

        def posts_answered() -> int:
            lines = [json.loads(line) for line in gateway.stderr().splitlines() if line[:1] == "{"]
            return sum(1 for e in lines if e.get("path") == "/generate" and e.get("status") == 202)

        wait_until(lambda: posts_answered() == 2, "the abandoned wait ended", timeout=20)


async def test_logs_and_progress_show_on_status_while_running(
    db: Database, mock_url: str, start_gateway: Starter, start_worker: Starter
) -> None:
    slow_predictions(mock_url, 6)  # processing for 4.5 s, four steps
    with start_gateway() as gateway, start_worker():
        http = await login(db, gateway.base_url)
        job_id = http.post("/generate", json={"prompt": "a fox"}).json()["job_id"]
        running: list[dict[str, Any]] = []

        def progressed() -> bool:
            body = http.get(f"/status/{job_id}").json()
            if body["status"] == "running":
                running.append(body)
            progress = {b["progress"] for b in running if b["progress"] is not None}
            return len(progress) >= 2 or (body["status"] != "running" and bool(running))

        wait_until(progressed, "progress shown while running", timeout=30)
        final = wait_for_status(http, job_id, {"succeeded", "failed"})

    with_progress = [b for b in running if b["progress"] is not None]
    assert with_progress, running
    assert all(0 <= b["progress"] <= 1 for b in with_progress)
    assert len({b["progress"] for b in with_progress}) >= 2  # seen moving
    assert all(b["logs"].startswith("Using seed: ") for b in with_progress)
    assert "/4 [" in with_progress[-1]["logs"]  # the denoising steps, as cog-flux prints them
    assert final["status"] == "succeeded"
    assert (final["logs"], final["progress"]) == (None, None)  # only while running


async def test_stopping_a_gateway_ends_its_streams_cleanly(
    db: Database, start_gateway: Starter
) -> None:
    with start_gateway() as gateway:
        http = await login(db, gateway.base_url)
        job_id = http.post("/generate", json={"prompt": "a fox"}).json()["job_id"]
        with follow(http, job_id) as stream:
            assert stream.next() is not None
            gateway.signal(15)  # SIGTERM, as a deploy does
            assert stream.next() is None  # the stream ends (the client resumes elsewhere)
        gateway.popen.wait(10)  # it exits by itself: no open response holds it up
    logs = [json.loads(line) for line in gateway.stderr().splitlines() if line[:1] == "{"]
    assert "Application shutdown complete." in [line["msg"] for line in logs]
    assert not [line for line in logs if line["level"] == "ERROR"]


async def test_a_thousand_idle_streams_hold_no_database_connection(
    db: Database, start_gateway: Starter
) -> None:
    streams, jobs_count, pool = 1000, 10, 4
    with start_gateway(DB_POOL_SIZE=str(pool)) as gateway:
        http = await login(db, gateway.base_url)
        job_ids = [
            http.post("/generate", json={"prompt": f"fox {i}"}).json()["job_id"]
            for i in range(jobs_count)
        ]
        limits = httpx.Limits(max_connections=streams, max_keepalive_connections=0)
        async with httpx.AsyncClient(
            base_url=gateway.base_url, headers=http.headers, limits=limits, timeout=60
        ) as client:
            opened = 0
            all_open = asyncio.Event()

            async def watch(job_id: str) -> list[str]:
                """The statuses a stream shows, until it ends."""
                nonlocal opened
                seen, event = [], None
                async with client.stream("GET", f"/jobs/{job_id}/events") as response:
                    assert response.status_code == 200
                    async for line in response.aiter_lines():
                        if line.startswith("event: "):
                            event = line.removeprefix("event: ")
                        elif line.startswith("data: ") and event == "status":
                            seen.append(json.loads(line.removeprefix("data: "))["status"])
                            if len(seen) == 1:
                                opened += 1
                                if opened == streams:
                                    all_open.set()
                return seen

            watching = [asyncio.create_task(watch(job_ids[i % jobs_count])) for i in range(streams)]
            async with asyncio.timeout(120):
                await all_open.wait()
            # Every stream got its state through a pool of 4 and waits: no connection each.
            async with db.session() as session:
                held = await session.execute(
                    text(
                        "SELECT application_name, state FROM pg_stat_activity"
                        " WHERE datname = current_database() AND application_name LIKE 'gateway%'"
                    )
                )
                backends = held.all()
            assert len([b for b in backends if b.application_name == "gateway"]) <= pool
            assert [b.application_name for b in backends].count("gateway-job-changes") == 1
            for job_id in job_ids:  # one change each wakes its hundred streams
                assert http.post(f"/jobs/{job_id}/cancel").status_code == 200
            async with asyncio.timeout(120):
                results = await asyncio.gather(*watching)
    assert all(seen[0] == "queued" and seen[-1] == "canceled" for seen in results)
