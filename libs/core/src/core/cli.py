"""Operator commands: `python -m core.cli create-database | create-user`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

import asyncpg
from sqlalchemy.engine import make_url

from core.db import create_database
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
    args = parser.parse_args(argv)

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
