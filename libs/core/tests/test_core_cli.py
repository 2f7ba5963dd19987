"""Operator commands against the real PostgreSQL server.

`main()` calls asyncio.run, so it runs in a worker thread, away from the tests' event loop.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlmodel import select

from core.cli import MigrationHistory, create_database_if_missing, main, wait_for_migrations
from core.db import Database
from core.models import User
from core.passwords import verify_password
from core.settings import DatabaseSettings
from testkit.database import (
    ADMIN_URL,
    REPO_ROOT,
    asyncpg_dsn,
    create_test_database,
    drop_test_database,
    migrate,
)


async def database_exists(name: str) -> bool:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


@pytest.fixture
async def new_database_url() -> AsyncIterator[str]:
    """A URL naming a database that does not exist yet (dropped afterwards if it was made)."""
    name = f"cli-test_{uuid.uuid4().hex[:10]}"  # the hyphen needs quoting in CREATE DATABASE
    url = make_url(ADMIN_URL).set(drivername="postgresql+asyncpg", database=name)
    yield url.render_as_string(hide_password=False)
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(autouse=True)
def cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", "cli-test-secret-" + "0" * 32)  # no placeholder warning
    monkeypatch.delenv("FIRST_USER_USERNAME", raising=False)
    monkeypatch.delenv("FIRST_USER_PASSWORD", raising=False)


async def test_create_database_if_missing(new_database_url: str) -> None:
    name = make_url(new_database_url).database
    assert name is not None
    assert not await database_exists(name)
    assert await create_database_if_missing(new_database_url) is True
    assert await database_exists(name)
    assert await create_database_if_missing(new_database_url) is False


async def test_create_database_needs_a_name() -> None:
    with pytest.raises(ValueError, match="names no database"):
        await create_database_if_missing("postgresql+asyncpg://postgres@127.0.0.1:5432")


async def test_create_database_command(
    new_database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", new_database_url)
    assert await asyncio.to_thread(main, ["create-database"]) == 0
    assert await asyncio.to_thread(main, ["create-database"]) == 0
    assert capsys.readouterr().err.splitlines() == ["database created", "database exists"]


async def test_create_user_command(
    db: Database,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    argv = ["create-user", "--username", "admin", "--password", "admin-password"]
    assert await asyncio.to_thread(main, argv) == 0
    assert await asyncio.to_thread(main, argv) == 0
    lines = capsys.readouterr().err.splitlines()
    assert "user 'admin' created" in lines
    assert "user 'admin' already exists" in lines
    async with db.session() as session:
        users = (await session.exec(select(User))).all()
    assert [u.username for u in users] == ["admin"]
    assert await verify_password(users[0].hashed_password, "admin-password")


async def test_create_user_reads_first_user_env(
    db: Database,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("FIRST_USER_USERNAME", "from-env")
    monkeypatch.setenv("FIRST_USER_PASSWORD", "env-password")
    assert await asyncio.to_thread(main, ["create-user"]) == 0
    async with db.session() as session:
        users = (await session.exec(select(User))).all()
    assert [u.username for u in users] == ["from-env"]


async def test_create_user_short_password_exits_2(
    db: Database,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    argv = ["create-user", "--username", "admin", "--password", "short"]
    assert await asyncio.to_thread(main, argv) == 2
    assert "error: password must be at least 8 characters" in capsys.readouterr().err.splitlines()
    async with db.session() as session:
        assert (await session.exec(select(User))).all() == []


# --- wait-for-migrations: the init container every app pod runs before it starts ----------

ALEMBIC_INI = str(REPO_ROOT / "alembic.ini")


@pytest.fixture
async def empty_database_url() -> AsyncIterator[str]:
    """A new database with no migration applied."""
    url = await create_test_database("cli-wait")
    yield url
    await drop_test_database(url)


async def test_wait_for_migrations_passes_at_once_at_head(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    argv = ["wait-for-migrations", "--timeout", "30", "--config", ALEMBIC_INI]
    assert await asyncio.to_thread(main, argv) == 0
    heads = sorted(MigrationHistory.read(ALEMBIC_INI).heads)
    assert capsys.readouterr().err.splitlines()[-1] == f"database migrated: {heads}"


async def test_wait_for_migrations_fails_when_the_migration_never_comes(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    argv = ["wait-for-migrations", "--timeout", "0.5", "--config", ALEMBIC_INI]
    assert await asyncio.to_thread(main, argv) == 1
    err = capsys.readouterr().err
    assert "database at no revision; waiting for" in err
    assert "did not reach" in err


async def test_wait_for_migrations_returns_once_the_database_is_migrated(
    empty_database_url: str,
) -> None:
    history = MigrationHistory.read(ALEMBIC_INI)
    settings = DatabaseSettings(database_url=empty_database_url)
    waiting = asyncio.create_task(wait_for_migrations(settings, history, poll_seconds=0.05))
    try:
        await asyncio.sleep(0)  # let it start: the database has no revision, so it must wait
        assert not waiting.done()
        await asyncio.to_thread(migrate, empty_database_url)  # what the migrate Job does
        async with asyncio.timeout(30):
            assert await waiting == history.heads
    finally:
        waiting.cancel()


async def test_wait_for_migrations_accepts_a_newer_database(empty_database_url: str) -> None:
    # After a rollback the database holds a revision this image does not know; its pods must
    # still start (migrations stay compatible with the release before).
    conn = await asyncpg.connect(asyncpg_dsn(empty_database_url))
    try:
        await conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        await conn.execute("INSERT INTO alembic_version VALUES ('9999_from_the_future')")
    finally:
        await conn.close()
    history = MigrationHistory.read(ALEMBIC_INI)
    settings = DatabaseSettings(database_url=empty_database_url)
    async with asyncio.timeout(30):
        assert await wait_for_migrations(settings, history) == {"9999_from_the_future"}


async def test_wait_for_migrations_waits_out_an_unreachable_database(
    capsys: pytest.CaptureFixture[str],
) -> None:
    history = MigrationHistory.read(ALEMBIC_INI)
    settings = DatabaseSettings(database_url="postgresql+asyncpg://postgres@127.0.0.1:1/app")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await wait_for_migrations(settings, history, poll_seconds=0.05)
    assert "database not reachable yet" in capsys.readouterr().err
