"""Caller webhook deliveries against the real database: the trigger records one with each
transition (per the events filter, atomically, with the job as it was), the sender's lease,
attempts and their schedule, the caller's view, and signing secrets with their rotation."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from core import jobs, webhook_deliveries
from core.db import Database
from core.models import User
from core.schemas.generation import GenerateRequest
from core.schemas.webhooks import DeliveryStatus
from core.webhook_deliveries import AttemptOutcome
from core.webhooks import generate_secret

MODEL = "black-forest-labs/flux-schnell"
HOOK = "https://hooks.example.com/jobs"
FILE = jobs.MediaFile(0, "generations/x/0.png", "image/png", 3, "cd" * 32, "http://o/0.png")
LEASE = timedelta(minutes=5)
NOW = timedelta(0)
FAILED = AttemptOutcome(status_code=500, error="answered 500", duration_ms=12)
OK = AttemptOutcome(status_code=204, error=None, duration_ms=7)


async def new_user(db: Database, name: str = "alice") -> uuid.UUID:
    async with db.session() as session:
        user = User(username=name, hashed_password="x")
        session.add(user)
        await session.commit()
        return user.id


async def new_job(db: Database, owner: uuid.UUID, **options: Any) -> uuid.UUID:
    request = GenerateRequest.model_validate({"prompt": "a fox", **options})
    job = jobs.new_job(owner_id=owner, request=request, model=MODEL, idempotency_key=None)
    async with db.session() as session:
        await jobs.insert_many(session, [job])
    return job.id


async def deliveries(db: Database, job_id: uuid.UUID) -> list[tuple[str, str, str]]:
    """(event, status of the job in its copy, url) of each delivery, oldest first."""
    async with db.session() as session:
        rows = await session.execute(
            text(
                "SELECT event, job->>'status', url FROM webhook_deliveries"
                " WHERE job_id = :id ORDER BY id"
            ),
            {"id": job_id},
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def run_to_success(db: Database, job_id: uuid.UUID) -> None:
    async with db.session() as session:
        assert await jobs.mark_running(session, job_id, f"p-{job_id}", "created")
        assert await jobs.mark_succeeded(session, job_id, [FILE])


async def claim(db: Database, lease: timedelta = LEASE, limit: int = 10) -> list[Any]:
    async with db.session() as session:
        return await webhook_deliveries.claim_due(session, lease, limit)


async def record(
    db: Database, delivery_id: int, outcome: AttemptOutcome, max_attempts: int = 3
) -> DeliveryStatus | None:
    async with db.session() as session:
        return await webhook_deliveries.record_attempt(
            session, delivery_id, outcome, max_attempts=max_attempts, retry_in=NOW
        )


@pytest.mark.parametrize(
    ("events_filter", "expected"),
    [
        (None, [("start", "running"), ("completed", "succeeded")]),
        (["start", "completed"], [("start", "running"), ("completed", "succeeded")]),
        (["start"], [("start", "running")]),
        (["completed"], [("completed", "succeeded")]),
    ],
)
async def test_each_transition_records_the_events_the_filter_asks_for(
    db: Database, events_filter: list[str] | None, expected: list[tuple[str, str]]
) -> None:
    owner = await new_user(db)
    job_id = await new_job(db, owner, webhook=HOOK, webhook_events_filter=events_filter)
    assert await deliveries(db, job_id) == []  # created and queued: no event
    await run_to_success(db, job_id)
    assert await deliveries(db, job_id) == [(event, st, HOOK) for event, st in expected]


async def test_failed_and_canceled_are_completed_too_and_no_webhook_means_no_delivery(
    db: Database,
) -> None:
    owner = await new_user(db)
    failed = await new_job(db, owner, webhook=HOOK)
    canceled = await new_job(db, owner, webhook=HOOK)
    quiet = await new_job(db, owner)
    async with db.session() as session:
        await jobs.record_error(session, failed, "transient", attempt=1)  # no status change
        assert await jobs.mark_failed(session, failed, "gave up")
        assert await jobs.cancel(session, canceled, owner)  # queued -> canceled: no start
        await jobs.mark_running(session, quiet, "p-quiet", "created")
        await jobs.mark_succeeded(session, quiet, [FILE])
    assert await deliveries(db, failed) == [("completed", "failed", HOOK)]
    assert await deliveries(db, canceled) == [("completed", "canceled", HOOK)]
    assert await deliveries(db, quiet) == []


async def test_statements_that_keep_the_status_record_nothing(db: Database) -> None:
    owner = await new_user(db)
    job_id = await new_job(db, owner, webhook=HOOK)
    async with db.session() as session:
        await jobs.mark_running(session, job_id, "p1", "created")
        await jobs.touch(session, job_id)
        await session.execute(
            text("UPDATE jobs SET updated_at = now() - interval '2 minutes' WHERE id = :id"),
            {"id": job_id},
        )
        await jobs.touch(session, job_id)
        assert not await jobs.mark_running(session, job_id, "p2", "created")  # a redelivery
    assert await deliveries(db, job_id) == [("start", "running", HOOK)]


async def test_a_transition_rolled_back_leaves_no_delivery(db: Database) -> None:
    owner = await new_user(db)
    job_id = await new_job(db, owner, webhook=HOOK)

    async def transition_then_fail() -> None:
        async with db.transaction() as session:
            assert await jobs.mark_running(session, job_id, "p1", "created")
            raise RuntimeError("the transaction fails after the transition")

    with pytest.raises(RuntimeError):
        await transition_then_fail()
    assert await deliveries(db, job_id) == []


async def test_the_copy_is_the_job_at_the_event_with_its_media(db: Database) -> None:
    owner = await new_user(db)
    job_id = await new_job(db, owner, webhook=HOOK, params={"seed": 7})
    async with db.session() as session:
        await jobs.mark_running(session, job_id, "p1", "created")
        running = await jobs.get(session, job_id, owner)
        await jobs.mark_succeeded(session, job_id, [FILE])
        succeeded = await jobs.get(session, job_id, owner)
    start, completed = sorted(await claim(db), key=lambda d: d.id)
    assert (start.event, completed.event) == ("start", "completed")
    assert running is not None
    assert succeeded is not None
    assert start.job_and_media() == (running.job, running.media)  # not what it became later
    assert completed.job_and_media() == (succeeded.job, succeeded.media)
    assert completed.job_and_media()[1] == [FILE]  # inserted by the same statement
    assert start.webhook_id != completed.webhook_id
    assert all(d.webhook_id.startswith("msg_") for d in (start, completed))


async def test_a_lease_keeps_a_delivery_from_other_senders_until_it_ends(db: Database) -> None:
    owner = await new_user(db)
    for _ in range(3):
        await run_to_success(db, await new_job(db, owner, webhook=HOOK))
    # Two senders at once share the six deliveries: none is taken twice.
    first, second = await asyncio.gather(claim(db, limit=4), claim(db, limit=4))
    taken = [d.id for d in first + second]
    assert len(taken) == len(set(taken)) == 6
    assert await claim(db) == []  # all leased
    # A sender that died holding a delivery: when its lease ends, another takes it.
    await run_to_success(
        db, await new_job(db, owner, webhook=HOOK, webhook_events_filter=["start"])
    )
    [crashed] = await claim(db, lease=NOW)
    [retaken] = await claim(db)
    assert (retaken.id, retaken.webhook_id, retaken.attempts) == (
        crashed.id,
        crashed.webhook_id,
        0,
    )


async def test_attempts_are_recorded_with_their_schedule(db: Database) -> None:
    owner = await new_user(db)
    job_id = await new_job(db, owner, webhook=HOOK, webhook_events_filter=["completed"])
    await run_to_success(db, job_id)
    statuses = []
    for _ in range(3):
        [delivery] = await claim(db)
        statuses.append(await record(db, delivery.id, FAILED, max_attempts=3))
    assert statuses == [DeliveryStatus.pending, DeliveryStatus.pending, DeliveryStatus.failed]
    assert await claim(db) == []  # given up
    assert await record(db, delivery.id, OK) is None  # not pending any more: nothing stored

    retried = await new_job(db, owner, webhook=HOOK, webhook_events_filter=["completed"])
    await run_to_success(db, retried)
    [delivery] = await claim(db)
    assert await record(db, delivery.id, FAILED) is DeliveryStatus.pending
    async with db.session() as session:
        await webhook_deliveries.record_attempt(
            session, delivery.id, FAILED, max_attempts=3, retry_in=timedelta(hours=1)
        )
    assert await claim(db) == []  # the next try is not due for an hour

    async with db.session() as session:
        [shown] = await webhook_deliveries.for_job(session, job_id, owner) or []
    assert (shown.event, shown.status, shown.url, shown.next_attempt_at) == (
        "completed",
        DeliveryStatus.failed,
        HOOK,
        None,
    )
    assert [(a.attempt, a.status_code, a.error, a.duration_ms) for a in shown.attempts] == [
        (n, 500, "answered 500", 12) for n in (1, 2, 3)
    ]


async def test_a_delivered_delivery_is_done(db: Database) -> None:
    owner, other = await new_user(db, "alice"), await new_user(db, "bob")
    job_id = await new_job(db, owner, webhook=HOOK)
    async with db.session() as session:
        assert await webhook_deliveries.for_job(session, job_id, owner) == []
        await jobs.mark_running(session, job_id, "p1", "created")
    [start] = await claim(db)
    assert await record(db, start.id, OK) is DeliveryStatus.delivered
    async with db.session() as session:
        [shown] = await webhook_deliveries.for_job(session, job_id, owner) or []
        assert await webhook_deliveries.for_job(session, job_id, other) is None
        assert await webhook_deliveries.for_job(session, uuid.uuid4(), owner) is None
    assert (shown.status, shown.webhook_id, shown.next_attempt_at) == (
        DeliveryStatus.delivered,
        start.webhook_id,
        None,
    )
    assert [(a.attempt, a.status_code, a.error) for a in shown.attempts] == [(1, 204, None)]


async def test_a_secret_is_made_once_and_rotation_keeps_the_old_key_for_the_grace(
    db: Database,
) -> None:
    owner = await new_user(db)

    async def keys_now() -> list[str]:
        await run_to_success(
            db, await new_job(db, owner, webhook=HOOK, webhook_events_filter=["start"])
        )
        [delivery] = await claim(db)
        return list(delivery.keys)

    assert await keys_now() == []  # never asked for: none yet
    async with db.session() as session:
        first = await webhook_deliveries.secret(session, owner, generate_secret())
        assert await webhook_deliveries.secret(session, owner, generate_secret()) == first
    assert first.startswith("whsec_")
    assert await keys_now() == [first]
    async with db.session() as session:
        second = await webhook_deliveries.rotate_secret(
            session, owner, generate_secret(), timedelta(hours=1)
        )
        assert await webhook_deliveries.secret(session, owner, generate_secret()) == second
    assert await keys_now() == [second, first]
    async with db.session() as session:
        third = await webhook_deliveries.rotate_secret(session, owner, generate_secret(), NOW)
    assert await keys_now() == [third]  # no grace: the old key no longer signs
    assert len({first, second, third}) == 3


async def secret_of(db: Database, owner: uuid.UUID) -> str:
    async with db.session() as session:
        return await webhook_deliveries.secret(session, owner, generate_secret())


async def test_concurrent_first_uses_agree_on_one_secret(db: Database) -> None:
    owner = await new_user(db)
    keys = await asyncio.gather(*(secret_of(db, owner) for _ in range(5)))
    assert len(set(keys)) == 1


async def test_times_are_shown_in_utc_whatever_the_sessions_time_zone(db: Database) -> None:
    owner = await new_user(db)
    job_id = await new_job(db, owner, webhook=HOOK)
    async with db.transaction() as session:
        await session.execute(text("SET LOCAL timezone = 'America/St_Johns'"))  # UTC-03:30
        await jobs.mark_running(session, job_id, "p1", "created")
        [shown] = await webhook_deliveries.for_job(session, job_id, owner) or []
    [delivery] = await claim(db)
    job, _ = delivery.job_and_media()
    assert shown.created_at.utcoffset() == timedelta(0)
    assert shown.model_dump_json().count("Z") >= 3  # created_at, updated_at, next_attempt_at
    assert job.updated_at.utcoffset() == timedelta(0)  # the trigger's copy too
