"""The worker's state machine against real PostgreSQL, the Replicate mock over HTTP, and
storage (local files and S3 on moto): success, every retry path, permanent failures,
redelivery and cancellation."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from sqlmodel import col, select

from core.db import Database
from core.models import Job, JobEvent, JobMedia
from generation_worker.resources import WorkerContext
from generation_worker.steps import Done, Poll, RetryLater, advance
from testkit.storage import read_all

from .conftest import MockControl, create_job, drive  # type: ignore[import-not-found]


async def load(db: Database, job_id: uuid.UUID) -> tuple[Job, list[JobMedia], list[JobEvent]]:
    async with db.session() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        media = (
            await session.exec(
                select(JobMedia).where(JobMedia.job_id == job_id).order_by(col(JobMedia.index))
            )
        ).all()
        events = (
            await session.exec(
                select(JobEvent).where(JobEvent.job_id == job_id).order_by(col(JobEvent.id))
            )
        ).all()
        return job, list(media), list(events)


async def assert_succeeded_with_stored_media(
    ctx: WorkerContext, db: Database, job_id: uuid.UUID, count: int
) -> Job:
    job, media, _ = await load(db, job_id)
    assert job.status == "succeeded", job.last_error
    assert job.finished_at is not None
    assert job.started_at is not None
    assert [m.index for m in media] == list(range(count))
    for row in media:
        data = await read_all(await ctx.storage.open_stream(row.storage_key))
        assert hashlib.sha256(data).hexdigest() == row.sha256
        assert len(data) == row.size_bytes
        assert row.storage_key == f"generations/{job_id}/{row.index}.png"
        assert data.startswith(b"\x89PNG")
    return job


async def test_job_succeeds_and_images_land_in_local_storage(
    ctx: WorkerContext, db: Database, mock: MockControl
) -> None:
    before = mock.stats()
    job_id = await create_job(db, num_outputs=2)
    outcomes = await drive(ctx, job_id)
    assert any(isinstance(o, Poll) for o in outcomes)  # it polled instead of waiting
    job = await assert_succeeded_with_stored_media(ctx, db, job_id, count=2)
    assert job.attempts == 1
    assert job.prediction_id is not None
    pred = mock.prediction(job.prediction_id)
    assert pred["input"] == {"prompt": "a lighthouse at dusk", **job.params}
    assert mock.stats()["predictions_created"] == before["predictions_created"] + 1
    _, _, events = await load(db, job_id)
    assert [(e.kind, e.to_status) for e in events] == [
        ("attempt", None),
        ("state", "running"),
        ("state", "succeeded"),
    ]


async def test_job_succeeds_with_s3_storage(
    open_ctx: Callable[..., Any], db: Database, mock: MockControl, moto_s3: Any
) -> None:
    bucket = f"media-{uuid.uuid4().hex[:8]}"
    ctx = await open_ctx(
        storage_backend="s3",
        s3_endpoint=moto_s3.endpoint,
        s3_access_key=moto_s3.access_key,
        s3_secret_key=moto_s3.secret_key,
        s3_bucket=bucket,
    )
    job_id = await create_job(db)
    await drive(ctx, job_id)
    await assert_succeeded_with_stored_media(ctx, db, job_id, count=1)
    url = await ctx.storage.presigned_url(f"generations/{job_id}/0.png", 60)
    assert url is not None
    assert httpx.get(url).content.startswith(b"\x89PNG")


async def test_429_is_retried_after_retry_after_then_succeeds(
    ctx: WorkerContext, db: Database, mock: MockControl
) -> None:
    mock.faults(next={"create": ["429", "429"]})
    job_id = await create_job(db)
    outcomes = await drive(ctx, job_id)
    retries = [o for o in outcomes if isinstance(o, RetryLater)]
    assert len(retries) == 2
    assert all(r.delay_seconds >= 1.0 for r in retries)  # the mock's Retry-After
    assert all("429" in r.error for r in retries)
    job = await assert_succeeded_with_stored_media(ctx, db, job_id, count=1)
    assert job.attempts == 3
    _, _, events = await load(db, job_id)
    assert [e.attempt for e in events if e.kind == "error"] == [1, 2]


async def test_500_and_connection_faults_on_polls_are_retried(
    ctx: WorkerContext, db: Database, mock: MockControl
) -> None:
    mock.faults(next={"create": ["500"], "get": ["500", "429"]})
    job_id = await create_job(db)
    outcomes = await drive(ctx, job_id)
    assert sum(isinstance(o, RetryLater) for o in outcomes) == 3
    job = await assert_succeeded_with_stored_media(ctx, db, job_id, count=1)
    assert job.attempts == 4


async def test_500_after_create_finds_the_prediction_instead_of_paying_twice(
    ctx: WorkerContext, db: Database, mock: MockControl
) -> None:
    before = mock.stats()["predictions_created"]
    mock.faults(next={"create": ["500_after_create"]})
    job_id = await create_job(db)
    outcomes = await drive(ctx, job_id)
    assert isinstance(outcomes[0], RetryLater)
    await assert_succeeded_with_stored_media(ctx, db, job_id, count=1)
    assert mock.stats()["predictions_created"] == before + 1
    _, _, events = await load(db, job_id)
    assert any("recovered" in (e.detail or "") for e in events)


async def test_create_timeout_finds_the_prediction_instead_of_paying_twice(
    ctx: WorkerContext, db: Database, mock: MockControl
) -> None:
    before = mock.stats()["predictions_created"]
    mock.faults(next={"create": ["slow"]})  # answers after 2 s; the client gives up after 1 s
    job_id = await create_job(db)
    outcomes = await drive(ctx, job_id)
    assert isinstance(outcomes[0], RetryLater)
    await assert_succeeded_with_stored_media(ctx, db, job_id, count=1)
    assert mock.stats()["predictions_created"] == before + 1


async def test_permanent_prediction_failure_is_stored_without_retrying(
    ctx: WorkerContext, db: Database, mock: MockControl
) -> None:
    mock.faults(next={"create": ["fail"]})
    job_id = await create_job(db)
    outcomes = await drive(ctx, job_id)
    assert not any(isinstance(o, RetryLater) for o in outcomes)
    job, media, _ = await load(db, job_id)
    assert job.status == "failed"
    assert job.attempts == 1
    assert job.last_error is not None
    assert "injected fault" in job.last_error
    assert media == []


async def test_invalid_input_at_replicate_fails_at_once(
    ctx: WorkerContext, db: Database, mock: MockControl
) -> None:
    job_id = await create_job(db, num_outputs=9)  # the model refuses it with a 422
    outcomes = await drive(ctx, job_id)
    assert outcomes == [Done()]
    job, _, _ = await load(db, job_id)
    assert job.status == "failed"
    assert job.last_error is not None
    assert "num_outputs" in job.last_error


async def test_gives_up_after_max_attempts(
    open_ctx: Callable[..., Any], db: Database, mock: MockControl
) -> None:
    ctx = await open_ctx(replicate_base_url="http://127.0.0.1:1")  # nothing listens there
    job_id = await create_job(db)
    outcomes = await drive(ctx, job_id)
    assert sum(isinstance(o, RetryLater) for o in outcomes) == 3
    job, _, events = await load(db, job_id)
    assert job.status == "failed"
    assert job.attempts == 4
    assert job.last_error is not None
    assert job.last_error.startswith("gave up after 4 attempts")
    assert [e.kind for e in events].count("error") == 3


async def test_bad_token_is_permanent(
    open_ctx: Callable[..., Any], db: Database, mock: MockControl
) -> None:
    ctx = await open_ctx(replicate_api_token="wrong-token")
    job_id = await create_job(db)
    assert await drive(ctx, job_id) == [Done()]
    job, _, _ = await load(db, job_id)
    assert job.status == "failed"
    assert job.last_error is not None
    assert "401" in job.last_error or "auth" in job.last_error.lower()


async def test_output_from_a_disallowed_host_is_refused(
    open_ctx: Callable[..., Any], db: Database, mock: MockControl
) -> None:
    ctx = await open_ctx(generation_allowed_output_hosts="replicate.delivery")
    job_id = await create_job(db)
    await drive(ctx, job_id)
    job, media, _ = await load(db, job_id)
    assert job.status == "failed"
    assert job.last_error is not None
    assert "'127.0.0.1' is not in the allowed output hosts" in job.last_error
    assert media == []


async def test_output_over_the_size_cap_is_refused(
    open_ctx: Callable[..., Any], db: Database, mock: MockControl
) -> None:
    ctx = await open_ctx(generation_max_output_bytes=1024)
    job_id = await create_job(db)
    await drive(ctx, job_id)
    job, _, _ = await load(db, job_id)
    assert job.status == "failed"
    assert job.last_error is not None
    assert "1024-byte cap" in job.last_error


async def test_storage_outage_is_retried_then_fails_with_the_reason(
    open_ctx: Callable[..., Any], db: Database, mock: MockControl
) -> None:
    ctx = await open_ctx(storage_backend="s3", s3_endpoint="127.0.0.1:1", s3_timeout_seconds=1)
    job_id = await create_job(db)
    outcomes = await drive(ctx, job_id)
    assert sum(isinstance(o, RetryLater) for o in outcomes) == 3
    job, _, _ = await load(db, job_id)
    assert job.status == "failed"
    assert job.last_error is not None
    assert "StorageUnavailable" in job.last_error


async def test_redelivered_messages_resume_and_never_create_twice(
    ctx: WorkerContext, db: Database, mock: MockControl
) -> None:
    before = mock.stats()["predictions_created"]
    job_id = await create_job(db)
    first = await advance(ctx, job_id, is_retry=False)
    assert isinstance(first, Poll)
    # The same start message delivered again (e.g. the worker died before acking it).
    again = await advance(ctx, job_id, is_retry=False)
    assert isinstance(again, Poll | Done)
    await drive(ctx, job_id)
    await assert_succeeded_with_stored_media(ctx, db, job_id, count=1)
    assert mock.stats()["predictions_created"] == before + 1
    # Delivered once more after success: skipped.
    assert await advance(ctx, job_id, is_retry=False) == Done()
    job, _, _ = await load(db, job_id)
    # Three deliveries of the start message before success (each a try); the late one after
    # success changed nothing.
    assert job.attempts == 3


async def test_canceled_job_cancels_its_prediction(
    ctx: WorkerContext, db: Database, mock: MockControl
) -> None:
    mock.faults(latency_seconds=30)
    job_id = await create_job(db)
    assert isinstance(await advance(ctx, job_id, is_retry=False), Poll)
    async with db.session() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        job.status = "canceled"
        session.add(job)
        await session.commit()
        prediction_id = job.prediction_id
    assert prediction_id is not None
    assert await advance(ctx, job_id, is_retry=False, is_poll=True) == Done()
    assert mock.prediction(prediction_id)["status"] == "canceled"


async def test_recovery_never_adopts_another_jobs_prediction(
    ctx: WorkerContext, db: Database, mock: MockControl
) -> None:
    """Two jobs with the very same input (the caller fixed the seed); the second one's create
    answer is lost. It must find nothing to adopt and make its own prediction."""
    first = await create_job(db, seed=7)
    await drive(ctx, first)
    mock.faults(next={"create": ["500"]})
    second = await create_job(db, seed=7)
    await drive(ctx, second)
    job_a, _, _ = await load(db, first)
    job_b, _, _ = await load(db, second)
    assert job_a.status == job_b.status == "succeeded"
    assert job_a.prediction_id != job_b.prediction_id


async def test_polls_record_the_running_predictions_logs_and_progress(
    ctx: WorkerContext, db: Database, mock: MockControl
) -> None:
    mock.faults(latency_seconds=4)  # processing for 3 s: four steps of 0.75 s
    job_id = await create_job(db, num_inference_steps=4)
    outcome = await advance(ctx, job_id, is_retry=False)
    seen: list[tuple[str | None, float | None]] = []
    polls = 0
    while isinstance(outcome, Poll):
        async with db.session() as session:
            job = await session.get(Job, job_id)
            assert job is not None
            if job.status == "running":
                seen.append((job.logs, job.progress))
        await asyncio.sleep(outcome.delay_seconds)  # as the delayed poll message would
        polls += 1
        outcome = await advance(ctx, job_id, is_retry=False, polls=polls, is_poll=True)
    assert outcome == Done()
    progress = [p for _, p in seen if p is not None]
    assert progress == sorted(progress)  # it only grows
    assert len(set(progress)) >= 2, seen  # and was seen growing while running
    assert all(p in (0.0, 0.25, 0.5, 0.75, 1.0) for p in progress)
    logs = [text for text, _ in seen if text is not None]
    assert logs
    assert all(text.startswith("Using seed: ") for text in logs)
    job, _, _ = await load(db, job_id)
    assert job.status == "succeeded"
