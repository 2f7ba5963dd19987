"""Read the pets for one report: one consistent snapshot, counts by aggregate, rows by cursor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from core.models import Pet
from core.schemas.pets import PetPublic, PetType


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


async def stream_pets(conn: AsyncConnection, page_size: int) -> AsyncIterator[PetPublic]:
    """Every pet, oldest first, through a server-side cursor fetching `page_size` rows a time."""
    stmt = (
        select(
            col(Pet.id), col(Pet.name), col(Pet.pet_type), col(Pet.created_at), col(Pet.updated_at)
        )
        .order_by(col(Pet.created_at), col(Pet.id))
        .execution_options(yield_per=page_size)
    )
    result = await conn.stream(stmt)
    try:
        # One await per page, not per row: each await crosses SQLAlchemy's greenlet bridge.
        async for page in result.partitions():
            for row in page:
                yield PetPublic.model_validate(row)
    finally:
        await result.close()
