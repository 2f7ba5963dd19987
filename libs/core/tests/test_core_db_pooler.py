"""Behind PgBouncer in transaction mode (a real one, in front of the test database), with
DB_PREPARED_STATEMENT_CACHE=false: the job operations work and their writes are committed.
With the default (direct connections), the same traffic breaks on the pooler: the setting is
what makes the difference."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core import jobs
from core.db import Database, create_database
from core.schemas.generation import GenerateRequest, JobStatus
from core.settings import DatabaseSettings

from .test_core_jobs import MODEL, new_user


@pytest.fixture
async def pooled(pgbouncer_url: str, db: Database) -> AsyncIterator[Database]:
    settings = DatabaseSettings(
        database_url=pgbouncer_url, db_prepared_statement_cache=False, db_pool_size=8
    )
    pooled = create_database(settings, application_name="tests-behind-pgbouncer")
    yield pooled
    await pooled.dispose()


async def one_job_lifecycle(db: Database, owner: uuid.UUID, n: int) -> uuid.UUID:
    request = GenerateRequest.model_validate({"prompt": f"fox {n}"})
    job = jobs.new_job(owner_id=owner, request=request, model=MODEL, idempotency_key=None)
    async with db.session() as session:
        assert await jobs.insert_many(session, [job]) == [True]
    async with db.session() as session:
        assert await jobs.begin_attempt(session, job.id) is not None
    async with db.session() as session:
        assert await jobs.mark_running(session, job.id, f"prediction-{job.id}", "created")
    async with db.session() as session:
        assert await jobs.mark_succeeded(session, job.id, [])
        found = await jobs.get(session, job.id, owner)
    assert found is not None
    assert found[0].status is JobStatus.succeeded
    return job.id


async def test_job_operations_work_behind_a_transaction_pooler(
    pooled: Database, db: Database
) -> None:
    owner = await new_user(db)
    ids = await asyncio.gather(*(one_job_lifecycle(pooled, owner, n) for n in range(40)))
    async with db.session() as direct:  # committed: visible to another connection
        query = text("SELECT count(*) FROM jobs WHERE status = 'succeeded' AND id = ANY(:ids)")
        assert (await direct.execute(query, {"ids": list(ids)})).scalar_one() == 40
    await pooled.ping()


async def test_the_default_settings_break_behind_the_same_pooler(
    pgbouncer_url: str, db: Database
) -> None:
    owner = await new_user(db)
    direct_settings = create_database(
        DatabaseSettings(database_url=pgbouncer_url, db_pool_size=8), application_name="tests"
    )
    try:
        with pytest.raises(DBAPIError, match="prepared statement"):
            await asyncio.gather(*(one_job_lifecycle(direct_settings, owner, n) for n in range(40)))
    finally:
        await direct_settings.dispose()
