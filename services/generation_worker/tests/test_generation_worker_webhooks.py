"""Replicate webhooks in the worker's state machine, against real PostgreSQL and the Replicate
mock: predictions are created with the job's webhook URL, a webhook's prediction is taken like
a poll's answer (a terminal one finishes the job without a GET), duplicates and strangers are
harmless, and a create whose answer was lost (or is late) is recovered by its webhook."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from core.db import Database
from core.replicate import Prediction
from generation_worker.resources import WorkerContext
from generation_worker.steps import Done, Poll, RetryLater, advance
from testkit.processes import free_port

from .conftest import MockControl, create_job, drive  # type: ignore[import-not-found]
from .test_generation_worker_flow import (  # type: ignore[import-not-found]
    assert_succeeded_with_stored_media,
    load,
)

# Nobody listens there: the mock's own deliveries fail, the tests deliver by hand.
BASE_URL = f"http://127.0.0.1:{free_port()}"
FALLBACK_POLL_SECONDS = 3600.0
DEADLINE = 15.0  # seconds to wait for the mock's prediction to reach a status


async def webhook_ctx(open_ctx: Callable[..., Any], **overrides: Any) -> WorkerContext:
    settings = {
        "replicate_webhook_base_url": BASE_URL,
        "generation_webhook_poll_interval_seconds": FALLBACK_POLL_SECONDS,
        **overrides,
    }
    ctx: WorkerContext = await open_ctx(**settings)
    return ctx


async def prediction_at(mock: MockControl, prediction_id: str, statuses: set[str]) -> Prediction:
    """What a webhook would carry once the prediction reached one of `statuses`."""
    async with asyncio.timeout(DEADLINE):
        while True:
            body = mock.prediction(prediction_id)
            if body["status"] in statuses:
                return Prediction.model_validate(body)
            await asyncio.sleep(0.05)


async def only_prediction_since(mock: MockControl, created_before: int) -> str:
    """The id of the one prediction created since the stats said `created_before`."""
    async with asyncio.timeout(DEADLINE):
        while mock.stats()["predictions_created"] == created_before:
            await asyncio.sleep(0.02)
    response = httpx.get(f"{mock.base_url}/v1/predictions", headers=mock.headers)
    newest: str = response.raise_for_status().json()["results"][0]["id"]
    return newest


async def start(ctx: WorkerContext, job_id: uuid.UUID) -> str:
    """The job's first step: the create; returns its prediction id."""
    outcome = await advance(ctx, job_id, is_retry=False)
    assert outcome == Poll(FALLBACK_POLL_SECONDS)  # the fallback poll, far away
    job, _, _ = await load(ctx.db, job_id)
    assert job.prediction_id is not None
    return job.prediction_id


async def test_predictions_are_created_with_the_jobs_webhook(
    open_ctx: Callable[..., Any], db: Database, mock: MockControl
) -> None:
    ctx = await webhook_ctx(open_ctx, replicate_webhook_events_filter="start,completed")
    job_id = await create_job(db)
    prediction = mock.prediction(await start(ctx, job_id))
    assert prediction["webhook"] == f"{BASE_URL}/webhooks/replicate?job_id={job_id}"
    assert prediction["webhook_events_filter"] == ["start", "completed"]


async def test_without_a_base_url_no_webhook_is_asked_for(
    ctx: WorkerContext, db: Database, mock: MockControl
) -> None:
    job_id = await create_job(db)
    assert isinstance(await advance(ctx, job_id, is_retry=False), Poll)
    job, _, _ = await load(db, job_id)
    assert job.prediction_id is not None
    assert "webhook" not in mock.prediction(job.prediction_id)


async def test_a_completed_webhook_finishes_the_job_without_a_poll(
    open_ctx: Callable[..., Any], db: Database, mock: MockControl
) -> None:
    ctx = await webhook_ctx(open_ctx)
    job_id = await create_job(db, num_outputs=2)
    prediction_id = await start(ctx, job_id)
    completed = await prediction_at(mock, prediction_id, {"succeeded"})
    gets_before = mock.stats()["calls"]["get"]

    outcome = await advance(ctx, job_id, is_retry=False, is_poll=True, delivered=completed)

    assert outcome == Done()
    await assert_succeeded_with_stored_media(ctx, db, job_id, count=2)
    assert mock.stats()["calls"]["get"] == gets_before  # the webhook's body was enough


async def test_a_duplicate_webhook_is_harmless(
    open_ctx: Callable[..., Any], db: Database, mock: MockControl
) -> None:
    ctx = await webhook_ctx(open_ctx)
    job_id = await create_job(db)
    completed = await prediction_at(mock, await start(ctx, job_id), {"succeeded"})
    first, again = await asyncio.gather(
        advance(ctx, job_id, is_retry=False, is_poll=True, delivered=completed),
        advance(ctx, job_id, is_retry=False, is_poll=True, delivered=completed),
    )
    late = await advance(ctx, job_id, is_retry=False, is_poll=True, delivered=completed)
    assert first == again == late == Done()
    job, media, events = await load(db, job_id)
    assert job.status == "succeeded"
    assert len(media) == 1
    assert [e.to_status for e in events if e.kind == "state"] == ["running", "succeeded"]


async def test_a_start_or_logs_webhook_is_like_a_poll_of_a_running_prediction(
    open_ctx: Callable[..., Any], db: Database, mock: MockControl
) -> None:
    mock.faults(latency_seconds=30)
    ctx = await webhook_ctx(open_ctx)
    job_id = await create_job(db)
    running = await prediction_at(mock, await start(ctx, job_id), {"starting", "processing"})
    outcome = await advance(ctx, job_id, is_retry=False, is_poll=True, delivered=running)
    assert isinstance(outcome, Poll)  # the actor schedules nothing for a webhook's Poll
    job, _, events = await load(db, job_id)
    assert job.status == "running"
    assert [e.to_status for e in events if e.kind == "state"] == ["running"]


async def test_a_failed_prediction_from_a_webhook_fails_the_job(
    open_ctx: Callable[..., Any], db: Database, mock: MockControl
) -> None:
    mock.faults(next={"create": ["fail"]})
    ctx = await webhook_ctx(open_ctx)
    job_id = await create_job(db)
    failed = await prediction_at(mock, await start(ctx, job_id), {"failed"})
    assert await advance(ctx, job_id, is_retry=False, is_poll=True, delivered=failed) == Done()
    job, _, _ = await load(db, job_id)
    assert job.status == "failed"
    assert job.last_error is not None
    assert "injected fault" in job.last_error


async def test_a_webhook_for_another_prediction_is_ignored(
    open_ctx: Callable[..., Any], db: Database, mock: MockControl
) -> None:
    mock.faults(latency_seconds=30)
    ctx = await webhook_ctx(open_ctx)
    mine, other = await create_job(db), await create_job(db)
    await start(ctx, mine)
    theirs = await prediction_at(mock, await start(ctx, other), {"starting", "processing"})
    stranger = theirs.model_copy(update={"status": "succeeded", "output": ["http://x/y.png"]})
    assert await advance(ctx, mine, is_retry=False, is_poll=True, delivered=stranger) == Done()
    job, media, _ = await load(db, mine)
    assert job.status == "running"
    assert job.prediction_id != theirs.id
    assert media == []


async def test_a_lost_create_is_recovered_by_its_webhook(
    open_ctx: Callable[..., Any], db: Database, mock: MockControl
) -> None:
    mock.faults(next={"create": ["500_after_create"]})
    ctx = await webhook_ctx(open_ctx)
    job_id = await create_job(db)
    created_before = mock.stats()["predictions_created"]
    outcome = await advance(ctx, job_id, is_retry=False)
    assert isinstance(outcome, RetryLater)  # the answer was lost: a retry would search
    prediction_id = await only_prediction_since(mock, created_before)
    job, _, _ = await load(db, job_id)
    assert (job.status, job.prediction_id) == ("queued", None)

    # The prediction's webhook names the job: it comes before the retry, and is adopted.
    completed = await prediction_at(mock, prediction_id, {"succeeded"})
    assert await advance(ctx, job_id, is_retry=False, is_poll=True, delivered=completed) == Done()

    job = await assert_succeeded_with_stored_media(ctx, db, job_id, count=1)
    assert job.prediction_id == prediction_id
    _, _, events = await load(db, job_id)
    assert f"prediction {prediction_id} (recovered by webhook)" in [e.detail for e in events]
    # The retry that was due finds the job finished and creates nothing.
    assert await advance(ctx, job_id, is_retry=True) == Done()
    assert mock.stats()["predictions_created"] == created_before + 1


async def test_a_webhook_that_overtakes_its_creates_answer_keeps_the_prediction(
    open_ctx: Callable[..., Any], db: Database, mock: MockControl
) -> None:
    """The `start` webhook can arrive before the create's own answer: the job adopts the
    prediction from the webhook, and the late answer must neither cancel it nor end the step."""
    mock.faults(latency_seconds=30, slow_seconds=4, next={"create": ["slow"]})
    ctx = await webhook_ctx(open_ctx, replicate_timeout_seconds=10)
    job_id = await create_job(db)
    created_before = mock.stats()["predictions_created"]
    creating = asyncio.create_task(advance(ctx, job_id, is_retry=False))
    prediction_id = await only_prediction_since(mock, created_before)
    started = await prediction_at(mock, prediction_id, {"starting", "processing"})
    assert not creating.done()  # the create has not answered yet

    webhook = await advance(ctx, job_id, is_retry=False, is_poll=True, delivered=started)
    assert isinstance(webhook, Poll)
    assert await creating == Poll(FALLBACK_POLL_SECONDS)  # the step goes on: its poll chain

    assert mock.prediction(prediction_id)["status"] != "canceled"
    job, _, events = await load(db, job_id)
    assert (job.status, job.prediction_id) == ("running", prediction_id)
    assert [e.detail for e in events if e.to_status == "running"] == [
        f"prediction {prediction_id} (recovered by webhook)"
    ]


async def test_a_webhook_adopts_nothing_another_job_owns(
    open_ctx: Callable[..., Any], db: Database, mock: MockControl
) -> None:
    mock.faults(latency_seconds=30)
    ctx = await webhook_ctx(open_ctx)
    owner, waiting = await create_job(db), await create_job(db)
    owned = await prediction_at(mock, await start(ctx, owner), {"starting", "processing"})
    assert await advance(ctx, waiting, is_retry=False, is_poll=True, delivered=owned) == Done()
    job, _, _ = await load(db, waiting)
    assert (job.status, job.prediction_id) == ("queued", None)


async def test_polling_still_finishes_a_job_whose_webhooks_never_come(
    open_ctx: Callable[..., Any], db: Database, mock: MockControl
) -> None:
    ctx = await webhook_ctx(open_ctx, generation_webhook_poll_interval_seconds=0.2)
    job_id = await create_job(db)
    outcomes = await drive(ctx, job_id)
    assert all(o == Poll(0.2) for o in outcomes if isinstance(o, Poll))  # the fallback spacing
    await assert_succeeded_with_stored_media(ctx, db, job_id, count=1)
