"""The Job aggregate against the real database: every operation, its event, and that every
transition is conditional (a second delivery of the same step changes nothing)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from core import jobs
from core.db import Database
from core.messaging import generate_message
from core.models import User
from core.pagination import InvalidCursor
from core.schemas.generation import GenerateRequest, JobStatus, Priority

MODEL = "black-forest-labs/flux-schnell"


async def new_user(db: Database, name: str = "alice") -> uuid.UUID:
    async with db.session() as session:
        user = User(username=name, hashed_password="x")
        session.add(user)
        await session.commit()
        return user.id


async def create(
    db: Database, owner: uuid.UUID, request: GenerateRequest, idempotency_key: str | None = None
) -> jobs.Accepted:
    """What the gateway does for one POST /generate, without its batching."""
    job = jobs.new_job(
        owner_id=owner, request=request, model=MODEL, idempotency_key=idempotency_key
    )
    async with db.session() as session:
        (stored,) = await jobs.insert_many(session, [job])
        return jobs.Accepted.of_new(job) if stored else await jobs.replayed(session, job)


async def new_job(
    db: Database, owner: uuid.UUID, prompt: str = "a fox", **params: Any
) -> uuid.UUID:
    request = GenerateRequest.model_validate({"prompt": prompt, "params": params})
    return (await create(db, owner, request)).job_id


async def events(db: Database, job_id: uuid.UUID) -> list[tuple[Any, ...]]:
    async with db.session() as session:
        rows = await session.execute(
            text(
                "SELECT kind, from_status, to_status, attempt, detail FROM job_events"
                " WHERE job_id = :id ORDER BY id"
            ),
            {"id": job_id},
        )
        return [tuple(row) for row in rows]


async def test_create_stores_a_queued_job_with_its_event_and_own_seed(db: Database) -> None:
    owner = await new_user(db)
    first, second = await new_job(db, owner), await new_job(db, owner)

    async with db.session() as session:
        job = await jobs.load(session, first)
        other = await jobs.load(session, second)
    assert job is not None
    assert other is not None
    assert job.status is JobStatus.queued
    assert (job.prompt, job.model, job.attempts, job.enqueued_at) == ("a fox", MODEL, 0, None)
    assert job.params["seed"] == jobs.derived_seed(first) != other.params["seed"]
    assert await events(db, first) == [("created", None, "queued", None, None)]


async def test_create_is_idempotent_per_caller_and_key(db: Database) -> None:
    alice, bob = await new_user(db, "alice"), await new_user(db, "bob")
    request = GenerateRequest.model_validate({"prompt": "a fox"})

    first = await create(db, alice, request, "k-1")
    again = await create(db, alice, request, "k-1")
    theirs = await create(db, bob, request, "k-1")

    assert first.created
    assert not again.created
    assert again.job_id == first.job_id
    assert theirs.created
    assert theirs.job_id != first.job_id
    with pytest.raises(jobs.IdempotencyConflict):
        await create(db, alice, GenerateRequest.model_validate({"prompt": "a wolf"}), "k-1")


async def test_get_returns_a_job_with_its_media_to_its_owner_only(db: Database) -> None:
    alice, bob = await new_user(db, "alice"), await new_user(db, "bob")
    job_id = await new_job(db, alice)
    files = [
        jobs.MediaFile(i, f"generations/{job_id}/{i}.png", "image/png", 10 + i, "ab" * 32, "u")
        for i in (1, 0)
    ]
    async with db.session() as session:
        await jobs.begin_attempt(session, job_id)
        await jobs.mark_running(session, job_id, "p1", "created")
        assert await jobs.mark_succeeded(session, job_id, files)
        found = await jobs.get(session, job_id, alice)
        hidden = await jobs.get(session, job_id, bob)

    assert hidden is None
    assert found is not None
    job, media, _ = found
    assert job.status is JobStatus.succeeded
    assert [m.index for m in media] == [0, 1]
    assert media[0] == files[1]
    async with db.session() as session:
        listed = await jobs.list_page(session, owner_id=alice, status=None, limit=5, cursor=None)
    assert [view.media for view in listed.items] == [media]  # a list shows the files too


async def test_list_pages_newest_first_with_a_status_filter(db: Database) -> None:
    owner = await new_user(db)
    ids = [await new_job(db, owner, prompt=f"p{n}") for n in range(5)]
    async with db.session() as session:
        await jobs.cancel(session, ids[2], owner)
        first = await jobs.list_page(session, owner_id=owner, status=None, limit=2, cursor=None)
        second = await jobs.list_page(
            session, owner_id=owner, status=None, limit=2, cursor=first.next_cursor
        )
        third = await jobs.list_page(
            session, owner_id=owner, status=None, limit=2, cursor=second.next_cursor
        )
        canceled = await jobs.list_page(
            session, owner_id=owner, status=JobStatus.canceled, limit=10, cursor=None
        )
        with pytest.raises(InvalidCursor):
            await jobs.list_page(session, owner_id=owner, status=None, limit=2, cursor="nope")

    seen = [view.job.id for page in (first, second, third) for view in page.items]
    assert seen == list(reversed(ids))
    assert third.next_cursor is None
    assert [view.job.id for view in canceled.items] == [ids[2]]


async def test_cancel_is_conditional(db: Database) -> None:
    alice, bob = await new_user(db, "alice"), await new_user(db, "bob")
    job_id = await new_job(db, alice)
    async with db.session() as session:
        assert not await jobs.cancel(session, job_id, bob)  # not theirs: as if missing
        assert await jobs.cancel(session, job_id, alice)
        with pytest.raises(jobs.JobNotCancelable) as finished:
            await jobs.cancel(session, job_id, alice)
    assert finished.value.status is JobStatus.canceled
    assert (await events(db, job_id))[-1][:3] == ("state", None, "canceled")


async def test_the_outbox_is_claimed_once_across_concurrent_relays(db: Database) -> None:
    owner = await new_user(db)
    ids = {await new_job(db, owner) for _ in range(6)}
    claimed: list[list[uuid.UUID]] = []
    both_hold_locks = asyncio.Barrier(2)

    async def relay() -> None:
        async with db.transaction() as session:
            mine = [
                job.job_id for job in await jobs.claim_unpublished(session, timedelta(0), limit=4)
            ]
            await both_hold_locks.wait()  # the other claims while these rows are locked
            await jobs.mark_enqueued(session, mine, "published by a test relay")
            claimed.append(mine)

    await asyncio.gather(relay(), relay())

    assert sorted(map(len, claimed)) == [2, 4]
    assert {i for batch in claimed for i in batch} == ids
    async with db.transaction() as session:
        assert await jobs.claim_unpublished(session, timedelta(0), limit=10) == []
    one = next(iter(ids))
    assert (await events(db, one))[-1] == (
        "enqueued",
        None,
        None,
        None,
        "published by a test relay",
    )


async def test_a_fresh_job_is_left_to_its_own_gateway_for_the_grace_time(db: Database) -> None:
    owner = await new_user(db)
    job_id = await new_job(db, owner)
    async with db.transaction() as session:
        assert await jobs.claim_unpublished(session, timedelta(hours=1), limit=10) == []
    async with db.transaction() as session:
        assert await jobs.claim_unpublished(session, timedelta(0), limit=10) == [
            jobs.Outgoing(job_id, Priority.normal)
        ]


async def test_a_retried_job_is_left_to_its_own_gateway_for_the_grace_time(db: Database) -> None:
    """A retried job was created long ago; the sweep must not publish it alongside the relay
    that is publishing it (two messages would spend two attempts of its new budget)."""
    owner = await new_user(db)
    job_id = await new_job(db, owner)
    async with db.session() as session:
        await session.execute(
            text("UPDATE jobs SET created_at = now() - interval '1 day' WHERE id = :id"),
            {"id": job_id},
        )
        await jobs.cancel(session, job_id, owner)
        assert await jobs.retry(session, job_id, owner) is Priority.normal
    async with db.transaction() as session:
        assert await jobs.claim_unpublished(session, timedelta(hours=1), limit=10) == []
    async with db.transaction() as session:
        assert await jobs.claim_unpublished(session, timedelta(0), limit=10) == [
            jobs.Outgoing(job_id, Priority.normal)
        ]


async def test_a_confirm_recorded_after_the_job_finished_leaves_what_its_caller_saw(
    db: Database,
) -> None:
    owner = await new_user(db)
    job_id = await new_job(db, owner)
    async with db.session() as session:
        await jobs.begin_attempt(session, job_id)
        await jobs.mark_running(session, job_id, "p1", "created")
        assert await jobs.mark_failed(session, job_id, "bad")
        finished = await jobs.get(session, job_id, owner)
        await jobs.mark_enqueued(session, [job_id], "confirmed late")
        later = await jobs.get(session, job_id, owner)
    assert finished is not None
    assert later is not None
    assert later.job.enqueued_at is not None
    assert later.job.updated_at == finished.job.updated_at == finished.job.finished_at


async def test_a_swept_job_is_published_in_the_trace_it_was_created_in(db: Database) -> None:
    """The sweep publishes long after the request: the job's stored context goes into the
    generate message's options, for the worker to continue the job's one trace."""
    owner = await new_user(db)
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    request = GenerateRequest.model_validate({"prompt": "traced"})
    traced = jobs.new_job(
        owner_id=owner, request=request, model=MODEL, idempotency_key=None, trace_parent=traceparent
    )
    async with db.session() as session:
        await jobs.insert_many(session, [traced])
    async with db.transaction() as session:
        [claimed] = await jobs.claim_unpublished(session, timedelta(0), limit=10)
    assert claimed == jobs.Outgoing(traced.id, Priority.normal, traceparent)
    message = generate_message(str(claimed.job_id), claimed.priority, claimed.trace_parent)
    assert message.options["traceparent"] == traceparent
    async with db.session() as session:
        assert await jobs.trace_parent(session, traced.id) == traceparent
        assert await jobs.trace_parent(session, await new_job(db, owner)) is None
    assert "traceparent" not in generate_message(str(traced.id)).options  # untraced: nothing


async def test_stale_jobs_are_claimed_by_age(db: Database) -> None:
    owner = await new_user(db)
    old, _fresh = await new_job(db, owner), await new_job(db, owner)
    async with db.session() as session:
        await session.execute(
            text("UPDATE jobs SET updated_at = now() - interval '1 hour' WHERE id = :id"),
            {"id": old},
        )
    async with db.transaction() as session:
        stale = await jobs.claim_stale(session, timedelta(minutes=15), limit=10)
    assert [job.job_id for job in stale] == [old]  # not the fresh one


async def test_an_attempt_is_counted_once_per_call_and_only_while_unfinished(
    db: Database,
) -> None:
    owner = await new_user(db)
    job_id = await new_job(db, owner)
    async with db.session() as session:
        first = await jobs.begin_attempt(session, job_id)
        second = await jobs.begin_attempt(session, job_id)
        assert first is not None
        assert second is not None
        assert (first.number, second.number) == (1, 2)
        # The first attempt could not have created anything; the second may find its create.
        assert first.create_requested_before is None
        assert second.create_requested_before == first.job.create_requested_at
        assert first.job.started_at == second.job.started_at
        await jobs.mark_failed(session, job_id, "boom")
        assert await jobs.begin_attempt(session, job_id) is None
        assert await jobs.begin_attempt(session, uuid.uuid4()) is None
    kinds = [(kind, attempt) for kind, _, _, attempt, _ in await events(db, job_id)]
    assert kinds == [("created", None), ("attempt", 1), ("attempt", 2), ("state", None)]


async def test_running_needs_a_queued_job_without_a_prediction(db: Database) -> None:
    owner = await new_user(db)
    job_id, canceled = await new_job(db, owner), await new_job(db, owner)
    async with db.session() as session:
        assert await jobs.mark_running(session, job_id, "p1", "created")
        assert not await jobs.mark_running(session, job_id, "p2", "created")  # a redelivery
        await jobs.cancel(session, canceled, owner)
        assert not await jobs.mark_running(session, canceled, "p3", "created")
        assert await jobs.prediction_claimed(session, "p1")
        assert not await jobs.prediction_claimed(session, "p3")
        job = await jobs.load(session, job_id)
    assert job is not None
    assert (job.status, job.prediction_id) == (JobStatus.running, "p1")
    assert (await events(db, job_id))[-1] == (
        "state",
        "queued",
        "running",
        None,
        "prediction p1 (created)",
    )


async def test_errors_are_recorded_and_failure_is_final(db: Database) -> None:
    owner = await new_user(db)
    job_id = await new_job(db, owner)
    async with db.session() as session:
        await jobs.record_error(session, job_id, "x" * 5000, attempt=1)
        job = await jobs.load(session, job_id)
        assert job is not None
        assert job.last_error == "x" * jobs.ERROR_MAX
        assert await jobs.mark_failed(session, job_id, "gave up")
        assert not await jobs.mark_failed(session, job_id, "again")
        await jobs.record_error(session, job_id, "late", attempt=2)  # ignored: finished
        job = await jobs.load(session, job_id)
    assert job is not None
    assert (job.status, job.last_error) == (JobStatus.failed, "gave up")
    assert job.finished_at is not None
    assert [e[0] for e in await events(db, job_id)] == ["created", "error", "state"]


async def test_success_stores_media_only_for_a_running_job(db: Database) -> None:
    owner = await new_user(db)
    job_id, canceled = await new_job(db, owner), await new_job(db, owner)
    file = jobs.MediaFile(0, "generations/x/0.png", "image/png", 3, "cd" * 32, "http://o/0.png")
    async with db.session() as session:
        assert not await jobs.mark_succeeded(session, job_id, [file])  # still queued
        await jobs.mark_running(session, job_id, "p1", "created")
        await jobs.mark_running(session, canceled, "p2", "created")
        await jobs.cancel(session, canceled, owner)
        assert not await jobs.mark_succeeded(session, canceled, [file])
        assert await jobs.mark_succeeded(session, job_id, [file])
        assert not await jobs.mark_succeeded(session, job_id, [file])  # a redelivery
        done = await jobs.get(session, job_id, owner)
        nothing = await jobs.get(session, canceled, owner)
    assert done is not None
    assert nothing is not None
    assert done[0].status is JobStatus.succeeded
    assert done[1] == [file]
    assert nothing[1] == []


async def test_touch_writes_at_most_once_a_minute(db: Database) -> None:
    owner = await new_user(db)
    job_id = await new_job(db, owner)
    async with db.session() as session:
        await jobs.mark_running(session, job_id, "p1", "created")
        before = await jobs.load(session, job_id)
        await jobs.touch(session, job_id)
        unchanged = await jobs.load(session, job_id)
        await session.execute(
            text("UPDATE jobs SET updated_at = now() - interval '2 minutes' WHERE id = :id"),
            {"id": job_id},
        )
        await jobs.touch(session, job_id)
        touched = await jobs.load(session, job_id)
    assert before is not None
    assert unchanged is not None
    assert touched is not None
    assert unchanged.updated_at == before.updated_at
    assert touched.updated_at > before.updated_at - timedelta(seconds=1)


async def test_jobs_stored_together_keep_their_order_and_keys(db: Database) -> None:
    owner = await new_user(db)
    request = GenerateRequest.model_validate({"prompt": "a fox"})
    batch = [
        jobs.new_job(owner_id=owner, request=request, model=MODEL, idempotency_key=key)
        for key in ("k", None, "k", None)
    ]
    async with db.session() as session:
        stored = await jobs.insert_many(session, batch)
        replay = await jobs.replayed(session, batch[2])
        page = await jobs.list_page(session, owner_id=owner, status=None, limit=10, cursor=None)

    assert stored == [True, True, False, True]  # the second "k" names the first's job
    assert replay == jobs.Accepted(batch[0].id, JobStatus.queued, created=False)
    assert [view.job.id for view in page.items] == [batch[3].id, batch[1].id, batch[0].id]
    for job in (batch[0], batch[1], batch[3]):
        assert await events(db, job.id) == [("created", None, "queued", None, None)]


async def queued_job(db: Database, owner: uuid.UUID, priority: str) -> uuid.UUID:
    request = GenerateRequest.model_validate({"prompt": "a fox", "priority": priority})
    return (await create(db, owner, request)).job_id


async def test_queue_position_counts_higher_priorities_then_older_jobs(db: Database) -> None:
    alice, bob = await new_user(db, "alice"), await new_user(db, "bob")
    normal_1 = await queued_job(db, alice, "normal")
    low = await queued_job(db, bob, "low")
    normal_2 = await queued_job(db, bob, "normal")
    high = await queued_job(db, alice, "high")
    normal_3 = await queued_job(db, alice, "normal")
    owners = {normal_1: alice, low: bob, normal_2: bob, high: alice, normal_3: alice}

    async def positions() -> dict[uuid.UUID, int | None]:
        async with db.session() as session:
            views = [await jobs.get(session, job, owner) for job, owner in owners.items()]
        return {view.job.id: view.queue_position for view in views if view is not None}

    # Every caller's queued jobs count: the workers share one queue.
    assert await positions() == {high: 0, normal_1: 1, normal_2: 2, normal_3: 3, low: 4}
    async with db.session() as session:
        await jobs.mark_running(session, high, "p-high", "created")
        await jobs.cancel(session, normal_1, alice)
    assert await positions() == {high: None, normal_1: None, normal_2: 0, normal_3: 1, low: 2}


async def test_watched_gives_the_history_after_an_entry_from_one_snapshot(db: Database) -> None:
    alice, bob = await new_user(db, "alice"), await new_user(db, "bob")
    job_id = await new_job(db, alice)
    async with db.session() as session:
        fresh = await jobs.watched(session, job_id, alice, None)
        await jobs.begin_attempt(session, job_id)
        await jobs.mark_running(session, job_id, "p1", "created")
        later = await jobs.watched(
            session, job_id, alice, None if fresh is None else fresh.last_event_id
        )
        hidden = await jobs.watched(session, job_id, bob, None)
    assert hidden is None
    assert fresh is not None
    assert later is not None
    assert fresh.events == []  # no resume point: the state only
    assert fresh.view.job.status is JobStatus.queued
    assert fresh.view.queue_position == 0
    assert [(e.kind, e.from_status, e.to_status, e.attempt) for e in later.events] == [
        ("attempt", None, None, 1),
        ("state", JobStatus.queued, JobStatus.running, None),
    ]
    assert fresh.last_event_id is not None
    assert fresh.last_event_id < later.events[0].id < later.events[1].id == later.last_event_id
    assert later.view.job.status is JobStatus.running
    assert later.view.queue_position is None


async def test_progress_is_written_only_when_it_changed(db: Database) -> None:
    owner = await new_user(db)
    job_id = await new_job(db, owner)
    async with db.session() as session:
        await jobs.record_progress(session, job_id, "Using seed: 1\n", None)  # not running yet
        before = await jobs.load(session, job_id)
        await jobs.mark_running(session, job_id, "p1", "created")
        await jobs.record_progress(session, job_id, "x" * 5000 + " 50%| 2/4", 0.5)
        first = await jobs.load(session, job_id)
        await jobs.record_progress(session, job_id, "x" * 5000 + " 50%| 2/4", 0.5)
        again = await jobs.load(session, job_id)
    assert before is not None
    assert before.logs is None
    assert first is not None
    assert again is not None
    assert first.logs is not None
    assert len(first.logs) == jobs.LOGS_MAX
    assert first.logs.endswith(" 50%| 2/4")
    assert first.progress == 0.5
    assert again.updated_at == first.updated_at  # the same logs again: no write
    assert await events(db, job_id) == [
        ("created", None, "queued", None, None),
        ("state", "queued", "running", None, "prediction p1 (created)"),
    ]  # logs are not history


async def test_only_changes_a_caller_sees_notify_job_changed(
    db: Database, database_url: str
) -> None:
    """The trigger of migration 0006: status, logs, progress and last_error, once each."""
    notified: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    await listener.add_listener("job_changed", lambda *args: notified.put_nowait(args[3]))
    try:
        owner = await new_user(db)
        job_id = await new_job(db, owner)
        async with db.session() as session:
            await jobs.mark_enqueued(session, [job_id], "test")  # silent
            await jobs.begin_attempt(session, job_id)  # silent: attempts only
            await jobs.record_error(session, job_id, "boom", 1)  # 1
            await jobs.mark_running(session, job_id, "p1", "created")  # 2
            await jobs.record_progress(session, job_id, "10%", 0.1)  # 3
            await jobs.record_progress(session, job_id, "10%", 0.1)  # unchanged: silent
            await jobs.touch(session, job_id)  # silent
            await jobs.mark_failed(session, job_id, "bad")  # 4
            await session.execute(text("SELECT pg_notify('job_changed', 'marker')"))
        async with asyncio.timeout(10):  # the marker comes last: nothing else is on its way
            received = [await notified.get() for _ in range(5)]
    finally:
        await listener.close()
    assert received == [str(job_id)] * 4 + ["marker"]
