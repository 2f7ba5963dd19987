"""Throwaway PostgreSQL databases: created, migrated with Alembic (the real CLI), dropped."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

REPO_ROOT = Path(__file__).resolve().parents[4]
ADMIN_URL = os.environ.get(
    "TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _admin_dsn() -> str:
    return ADMIN_URL


async def create_test_database(prefix: str = "test") -> str:
    """Create an empty database and return its SQLAlchemy asyncpg URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(_admin_dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    admin = make_url(ADMIN_URL)
    return str(
        admin.set(drivername="postgresql+asyncpg", database=name).render_as_string(
            hide_password=False
        )
    )


async def drop_test_database(url: str) -> None:
    name = make_url(url).database
    conn = await asyncpg.connect(_admin_dsn())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def migrate(url: str, revision: str = "head") -> None:
    """Run `alembic upgrade` in a subprocess, exactly as `make migrate` does."""
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", revision],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


def asyncpg_dsn(url: str) -> str:
    """The plain libpq-style DSN asyncpg.connect() takes, from a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
