from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.db import Database
from core.models import Job, User
from generation_worker.resources import WorkerContext
from generation_worker.settings import WorkerSettings
from generation_worker.steps import Done, Outcome, Poll, RetryLater, advance
from testkit.processes import run_uvicorn

MOCK_TOKEN = "worker-tests-token"


class MockControl:
    """Drives the Replicate mock's test-control endpoints."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {MOCK_TOKEN}"}

    def faults(self, **body: Any) -> None:
        response = httpx.post(f"{self.base_url}/_mock/faults", json=body, headers=self.headers)
        response.raise_for_status()

    def reset(self) -> None:
        self.faults(
            clear_next=True,
            rate_429=0,
            rate_500=0,
            rate_500_after_create=0,
            rate_slow=0,
            rate_fail=0,
            latency_seconds=0.2,
        )

    def stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.base_url}/_mock/stats", headers=self.headers)
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def prediction(self, prediction_id: str) -> dict[str, Any]:
        response = httpx.get(
            f"{self.base_url}/v1/predictions/{prediction_id}", headers=self.headers
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture(scope="session")
def replicate_mock() -> Iterator[MockControl]:
    env = {
        "REPLICATE_MOCK_API_TOKENS": MOCK_TOKEN,
        "REPLICATE_MOCK_LATENCY_SECONDS": "0.2",
        "REPLICATE_MOCK_RETRY_AFTER_SECONDS": "1",
        "REPLICATE_MOCK_SLOW_SECONDS": "2",
    }
    with run_uvicorn("replicate_mock.app:create_app", env) as proc:
        assert proc.base_url is not None
        yield MockControl(proc.base_url)


@pytest.fixture
def mock(replicate_mock: MockControl) -> MockControl:
    replicate_mock.reset()
    return replicate_mock


@pytest.fixture
def make_settings(
    database_url: str, broker_url: str, tmp_path: Path, replicate_mock: MockControl
) -> Callable[..., WorkerSettings]:
    def make(**overrides: Any) -> WorkerSettings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "broker_url": broker_url,
            "storage_backend": "local",
            "storage_local_root": str(tmp_path / "media"),
            "replicate_base_url": replicate_mock.base_url,
            "replicate_api_token": MOCK_TOKEN,
            "replicate_timeout_seconds": 1.0,
            "retry_min_backoff_ms": 50,
            "retry_max_backoff_ms": 400,
            "generation_poll_interval_seconds": 0.1,
            "generation_poll_max_interval_seconds": 0.3,
            "generation_max_attempts": 4,
        }
        values.update(overrides)
        return WorkerSettings(**values)

    return make


@pytest.fixture
async def open_ctx(
    make_settings: Callable[..., WorkerSettings],
) -> AsyncIterator[Callable[..., Any]]:
    opened: list[WorkerContext] = []

    async def open_(**overrides: Any) -> WorkerContext:
        ctx = WorkerContext.open(make_settings(**overrides))
        opened.append(ctx)
        return ctx

    yield open_
    for ctx in opened:
        await ctx.aclose()


@pytest.fixture
async def ctx(open_ctx: Callable[..., Any], db: Database) -> WorkerContext:
    context: WorkerContext = await open_ctx()
    return context


async def create_job(db: Database, **params: Any) -> uuid.UUID:
    async with db.session() as session:
        user = User(username=f"user-{uuid.uuid4().hex[:8]}", hashed_password="x")
        session.add(user)
        await session.flush()
        job = Job(
            owner_id=user.id,
            prompt="a lighthouse at dusk",
            model=params.pop("model", "black-forest-labs/flux-schnell"),
            # Like the gateway: a seed of its own unless the test fixes one.
            params={
                "seed": random.randrange(2**31),
                "output_format": "png",
                "num_outputs": 1,
                **params,
            },
        )
        session.add(job)
        await session.commit()
        return job.id


async def drive(ctx: WorkerContext, job_id: uuid.UUID, max_steps: int = 200) -> list[Outcome]:
    """Do what the actor and dramatiq do between steps: wait, then poll or retry."""
    outcomes: list[Outcome] = []
    is_retry = is_poll = False
    polls = 0
    for _ in range(max_steps):
        outcome = await advance(ctx, job_id, is_retry=is_retry, polls=polls, is_poll=is_poll)
        outcomes.append(outcome)
        match outcome:
            case Done():
                return outcomes
            case Poll(delay_seconds=delay):
                await asyncio.sleep(delay)
                is_poll, is_retry, polls = True, False, polls + 1
            case RetryLater(delay_seconds=delay):
                await asyncio.sleep(delay)
                is_retry = True
    raise AssertionError(f"job not done after {max_steps} steps: {outcomes[-5:]}")
