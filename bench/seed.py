"""Bulk-load pets with COPY (asyncpg copy_records_to_table)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import asyncpg

from core.schemas.pets import PetType

PET_TYPES = [t.value for t in PetType]
COLUMNS = ["id", "name", "pet_type", "created_at", "updated_at"]
# All seeded pets are older than this, so pets the API creates during a run sort after them.
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def _rows(first: int, count: int) -> Iterator[tuple[uuid.UUID, str, str, datetime, datetime]]:
    for i in range(first, first + count):
        at = EPOCH + timedelta(milliseconds=i)
        yield (uuid.uuid4(), f"pet {i}", PET_TYPES[i % len(PET_TYPES)], at, at)


async def copy_pets(dsn: str, first: int, count: int, *, chunk: int = 100_000) -> list[uuid.UUID]:
    """Append pets number first..first+count-1; VACUUM ANALYZE; return up to 10,000 ids."""
    conn = await asyncpg.connect(dsn)
    ids: list[uuid.UUID] = []
    try:
        done = 0
        while done < count:
            n = min(chunk, count - done)
            rows = list(_rows(first + done, n))
            ids += [r[0] for r in rows[: max(0, 10_000 - len(ids))]]
            await conn.copy_records_to_table("pets", records=rows, columns=COLUMNS)
            done += n
        await conn.execute("VACUUM ANALYZE pets")
    finally:
        await conn.close()
    return ids
