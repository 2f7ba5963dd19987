"""Operator commands: `python -m core.cli create-database | create-user | wait-for-migrations`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from dataclasses import dataclass

import asyncpg
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from core.db import Database, create_database
from core.settings import DatabaseSettings
from core.users import ensure_user


async def create_database_if_missing(database_url: str) -> bool:
    """Create the database named in the URL unless it exists. Returns True if it was created."""
    url = make_url(database_url)
    name = url.database
    if not name:
        raise ValueError("DATABASE_URL names no database")
    conn = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, password=url.password, database="postgres"
    )
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        quoted = '"' + name.replace('"', '""') + '"'
        await conn.execute(f"CREATE DATABASE {quoted}")
        return True
    finally:
        await conn.close()


async def _create_user(username: str, password: str) -> bool:
    db = create_database(DatabaseSettings(), application_name="core-cli")
    try:
        async with db.session() as session:
            return await ensure_user(session=session, username=username, password=password)
    finally:
        await db.dispose()


# How often wait-for-migrations looks at the database again.
MIGRATIONS_POLL_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class MigrationHistory:
    """What one image's migrations/ knows: its heads and every revision before them."""

    heads: frozenset[str]
    known: frozenset[str]

    @classmethod
    def read(cls, alembic_ini: str) -> MigrationHistory:
        script = ScriptDirectory.from_config(Config(alembic_ini))
        return cls(
            heads=frozenset(script.get_heads()),
            known=frozenset(rev.revision for rev in script.walk_revisions()),
        )

    def ready(self, applied: frozenset[str]) -> bool:
        """The database holds exactly our heads, or a revision we do not know: a newer release
        migrated it (its migrations stay compatible with the release before, so we may run)."""
        return applied == self.heads or bool(applied - self.known)


async def applied_revisions(db: Database) -> frozenset[str]:
    """The revisions in the database's alembic_version table (none before the first migration)."""
    async with db.session() as session:
        if not await session.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL")):
            return frozenset()
        rows = await session.execute(text("SELECT version_num FROM alembic_version"))
        return frozenset(row[0] for row in rows)


async def wait_for_migrations(
    settings: DatabaseSettings,
    history: MigrationHistory,
    *,
    poll_seconds: float = MIGRATIONS_POLL_SECONDS,
) -> frozenset[str]:
    """Wait until the database is migrated for this image; return what it holds.

    The caller bounds the wait (asyncio.timeout). An unreachable database is waited for too (it
    may be starting), and each new state is reported once on STDERR.
    """
    db = create_database(settings, application_name="wait-for-migrations")
    last_state = ""
    try:
        while True:
            try:
                applied = await applied_revisions(db)
            except (OSError, TimeoutError, SQLAlchemyError, asyncpg.PostgresError) as exc:
                state = f"database not reachable yet ({exc.__class__.__name__})"
            else:
                if history.ready(applied):
                    return applied
                state = f"database at {sorted(applied) or 'no revision'}"
            if state != last_state:
                print(f"{state}; waiting for {sorted(history.heads)}", file=sys.stderr)
                last_state = state
            await asyncio.sleep(poll_seconds)
    finally:
        await db.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("create-database", help="create the database in DATABASE_URL if missing")
    user = sub.add_parser("create-user", help="create a user (skipped if the name exists)")
    user.add_argument("--username", default=os.environ.get("FIRST_USER_USERNAME"))
    user.add_argument(
        "--password",
        default=os.environ.get("FIRST_USER_PASSWORD"),
        help="defaults to FIRST_USER_PASSWORD, else prompts",
    )
    wait = sub.add_parser(
        "wait-for-migrations",
        help="wait until the database holds this image's migration heads (exit 1 on timeout)",
    )
    wait.add_argument("--timeout", type=float, default=600.0, help="seconds (default 600)")
    wait.add_argument("--config", default="alembic.ini", help="Alembic config file")
    args = parser.parse_args(argv)

    if args.command == "wait-for-migrations":
        history = MigrationHistory.read(args.config)  # file reads: before the event loop

        async def wait_within_timeout() -> frozenset[str]:
            async with asyncio.timeout(args.timeout):
                return await wait_for_migrations(DatabaseSettings(), history)

        try:
            applied = asyncio.run(wait_within_timeout())
        except TimeoutError:
            print(
                f"error: the database did not reach {sorted(history.heads)} within "
                f"{args.timeout:g} s (has the migrate Job run?)",
                file=sys.stderr,
            )
            return 1
        print(f"database migrated: {sorted(applied)}", file=sys.stderr)
        return 0
    if args.command == "create-database":
        created = asyncio.run(create_database_if_missing(DatabaseSettings().database_url))
        print("database created" if created else "database exists", file=sys.stderr)
        return 0
    username = args.username or input("username: ")
    password = args.password or getpass.getpass("password: ")
    try:
        created = asyncio.run(_create_user(username, password))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"user {username!r} " + ("created" if created else "already exists"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
