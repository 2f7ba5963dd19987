"""Pytest fixtures shared by every package's tests (loaded through the pytest11 entry point).

Each test session gets its own database, migrated with Alembic and dropped at the end; each
test that asks for `db` starts with empty tables.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from core.db import Database, create_database
from core.models import metadata
from core.settings import DatabaseSettings
from testkit.database import create_test_database, drop_test_database, migrate


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    url = await create_test_database()
    try:
        migrate(url)
        yield url
    finally:
        await drop_test_database(url)


@pytest.fixture(scope="session")
async def session_db(database_url: str) -> AsyncIterator[Database]:
    db = create_database(DatabaseSettings(database_url=database_url), application_name="tests")
    yield db
    await db.dispose()


async def truncate_all(db: Database) -> None:
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    async with db.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def db(session_db: Database) -> Database:
    """The session's database with every table emptied before the test."""
    await truncate_all(session_db)
    return session_db


from testkit.browser import browser, chromium, page, phone_page  # noqa: E402,F401
from testkit.pgbouncer import pgbouncer_url  # noqa: E402,F401
from testkit.rabbit import broker_url, own_broker_url  # noqa: E402,F401
from testkit.s3 import moto_s3  # noqa: E402,F401
