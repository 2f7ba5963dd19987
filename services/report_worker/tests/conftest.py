"""Fixtures for the report worker: a fake clock, a database proxy that can go down, pets."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

import pytest
from sqlalchemy.engine import make_url

from core.db import Database
from core.models import Pet


class FakeClock:
    """Time moves only when the code under test sleeps or a test calls advance()."""

    def __init__(self, start: float) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep_until(self, when: float) -> None:
        self.sleeps.append(when)
        self.t = max(self.t, when)
        await asyncio.sleep(0)  # let other tasks run, as a real sleep would

    def advance(self, seconds: float) -> None:
        self.t += seconds


class PostgresProxy:
    """A TCP forwarder to PostgreSQL that the test can take down (closing every connection)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self._target)
        self._writers.update((client_w, server_w))

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.close()

        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))
        self._writers.difference_update((client_w, server_w))


@pytest.fixture
async def pg_proxy(database_url: str) -> AsyncIterator[tuple[PostgresProxy, str]]:
    """A proxy in front of the test database, and the database URL that goes through it."""
    url = make_url(database_url)
    proxy = PostgresProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.up()
    try:
        proxied = url.set(host="127.0.0.1", port=proxy.port)
        yield proxy, proxied.render_as_string(hide_password=False)
    finally:
        await proxy.down()


async def add_pets(db: Database, pets: Sequence[tuple[str, str, datetime]]) -> list[Pet]:
    """Insert pets (name, type, created_at) with deterministic ids, in the given order."""
    rows = [
        Pet(
            id=uuid.UUID(int=i + 1),
            name=name,
            pet_type=kind,
            created_at=created,
            updated_at=created,
        )
        for i, (name, kind, created) in enumerate(pets)
    ]
    async with db.session() as session:
        session.add_all(rows)
        await session.commit()
    return rows


def worker_env(database_url: str, **extra: str) -> dict[str, str]:
    """Environment for a `python -m report_worker` child process on the test database (no
    metrics port unless asked: replicas in one test would all want the default one)."""
    return {
        "DATABASE_URL": database_url,
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "INFO",
        "REPORT_METRICS_PORT": "0",
        **extra,
    }


@pytest.fixture
def clock_at() -> type[FakeClock]:
    """The FakeClock class: `clock_at(start_epoch_seconds)`."""
    return FakeClock


@pytest.fixture
def insert_pets(db: Database) -> object:
    async def insert(pets: Sequence[tuple[str, str, datetime]]) -> list[Pet]:
        return await add_pets(db, pets)

    return insert


@pytest.fixture
def env_for(database_url: str) -> object:
    def make(**extra: str) -> dict[str, str]:
        return worker_env(database_url, **extra)

    return make
