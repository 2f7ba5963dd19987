"""One async engine and two session factories per process (asyncpg + SQLModel's AsyncSession).

`session()` runs each statement as its own transaction (autocommit): no BEGIN and no COMMIT
round trips, which is what a request or worker step that is one statement wants (the job and
pet operations are each written as one statement). `transaction()` is for work that must be
atomic across statements or hold row locks (the outbox relay): BEGIN ... COMMIT, READ
COMMITTED.

Create them inside the event loop that will use them (FastAPI lifespan, worker start-up) and
dispose them there: an asyncpg pool belongs to the loop that opened its connections.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from core.settings import DatabaseSettings
from core.tracing import instrument_engine


@dataclass(frozen=True, slots=True)
class Database:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    transaction_maker: async_sessionmaker[AsyncSession]
    # First come, first served for the pool's connections. The pool's own wait lets a newcomer
    # take a connection just returned while a woken waiter is still on its way, and the waiter
    # goes to the back of the line: under a steady overload a few requests wait for seconds.
    # asyncio.Semaphore has been fair since Python 3.11.
    gate: asyncio.Semaphore = field(repr=False)
    # False behind a transaction pooler (DB_PREPARED_STATEMENT_CACHE=false): a session is then
    # one transaction, committed when it ends.
    autocommit: bool = True

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """Autocommit: every statement commits on its own."""
        if not self.autocommit:
            async with self.transaction() as session:
                yield session
            return
        async with self.gate, self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        async with self.gate, self.transaction_maker() as session, session.begin():
            yield session

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def _pooler_safe(connect_args: dict[str, Any]) -> dict[str, Any]:
    """asyncpg's and SQLAlchemy's statement caches off, and a fresh name for every statement
    SQLAlchemy prepares: a name cached on one server connection means nothing on the next."""
    return {
        **connect_args,
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
        "prepared_statement_name_func": lambda: f"__asyncpg_{uuid.uuid4()}__",
    }


def create_database(settings: DatabaseSettings, *, application_name: str) -> Database:
    connect_args: dict[str, Any] = {
        "timeout": settings.db_connect_timeout_seconds,
        "command_timeout": settings.db_statement_timeout_ms / 1000 or None,
        "server_settings": {"application_name": application_name},
    }
    direct = settings.db_prepared_statement_cache
    engine = create_async_engine(
        settings.database_url,
        # Behind a transaction pooler a statement outside a transaction may run on another
        # server connection than the one that prepared it: every session is a transaction.
        isolation_level="AUTOCOMMIT" if direct else "READ COMMITTED",
        pool_size=settings.db_pool_size,
        # No overflow: connections opened past the pool size are closed again on return, so a
        # sustained burst would pay a new connection (and its TLS probe) per request.
        max_overflow=0,
        pool_pre_ping=settings.db_pool_pre_ping,
        pool_recycle=600,
        connect_args=connect_args if direct else _pooler_safe(connect_args),
    )
    instrument_engine(engine)  # a span per statement, only with tracing on
    transactional = engine.execution_options(isolation_level="READ COMMITTED")
    return Database(
        engine=engine,
        autocommit=direct,
        sessionmaker=async_sessionmaker(
            engine, class_=AsyncSession, expire_on_commit=False, autoflush=False
        ),
        transaction_maker=async_sessionmaker(
            transactional, class_=AsyncSession, expire_on_commit=False, autoflush=False
        ),
        gate=asyncio.Semaphore(settings.db_pool_size),
    )
