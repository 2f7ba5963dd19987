"""Read the pets for one report: one consistent snapshot, counts by aggregate, rows by cursor."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass

import asyncpg
from pydantic import TypeAdapter
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from core.models import Pet
from core.schemas.pets import PetPublic, PetType
from report_worker.readahead import read_ahead

# The columns are PetPublic's fields, by name: a fetched row validates as one.
_PETS_OLDEST_FIRST = select(
    col(Pet.id), col(Pet.name), col(Pet.pet_type), col(Pet.created_at), col(Pet.updated_at)
).order_by(col(Pet.created_at), col(Pet.id))
_CURSOR = "report_pets"

# One validator call per page, not one per row.
_PAGE = TypeAdapter(list[PetPublic])


@dataclass(frozen=True, slots=True)
class PetCounts:
    by_type: dict[PetType, int]  # every known type, in PetType order, zeros included

    @property
    def total(self) -> int:
        return sum(self.by_type.values())


@asynccontextmanager
async def snapshot(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A REPEATABLE READ, READ ONLY transaction: the counts and the rows see the same data.

    Rolled back on exit; the worker writes nothing.
    """
    async with engine.connect() as conn:
        conn = await conn.execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
        async with conn.begin() as tx:
            try:
                yield conn
            finally:
                if tx.is_active:
                    await tx.rollback()


async def count_pets(conn: AsyncConnection) -> PetCounts:
    stmt = select(col(Pet.pet_type), func.count()).group_by(col(Pet.pet_type))
    found = {str(kind): int(n) for kind, n in (await conn.execute(stmt)).all()}
    return PetCounts(by_type={kind: found.get(kind.value, 0) for kind in PetType})


async def stream_pet_pages(
    conn: AsyncConnection, page_size: int
) -> AsyncGenerator[list[PetPublic], None]:
    """Every pet, oldest first, in validated pages of at most `page_size` from a server-side
    cursor. Close it (`contextlib.aclosing`) before the transaction ends: a page may be in flight.

    The cursor is declared through SQLAlchemy (which begins the transaction if nothing has yet)
    but read with the asyncpg connection underneath: SQLAlchemy's server-side cursor fetches
    each page in two round trips (50 rows, then the rest) and wraps every record in a Row. At a
    million pets that cost a fifth more CPU time than reading the records directly (3.9 s
    against 3.2 s for the whole report, start-up aside), and the second round trip, sent only
    once the first came back, kept the read-ahead from hiding the database's share.
    """
    sql = _PETS_OLDEST_FIRST.compile(dialect=conn.dialect)
    await conn.exec_driver_sql(f"DECLARE {_CURSOR} NO SCROLL CURSOR FOR {sql}")
    driver = (await conn.get_raw_connection()).driver_connection
    async with aclosing(read_ahead(_fetch_pages(driver, page_size))) as pages:
        async for records in pages:
            yield _PAGE.validate_python([dict(record.items()) for record in records])
    await conn.exec_driver_sql(f"CLOSE {_CURSOR}")


async def _fetch_pages(
    driver: asyncpg.Connection, page_size: int
) -> AsyncGenerator[list[asyncpg.Record], None]:
    """The declared cursor's asyncpg records, a page per round trip, until it is exhausted."""
    fetch = f"FETCH FORWARD {int(page_size)} FROM {_CURSOR}"
    while records := await driver.fetch(fetch):
        yield records
