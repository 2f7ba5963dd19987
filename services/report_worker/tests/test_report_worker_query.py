"""The snapshot: counts and rows agree even while pets are being added."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from core.db import Database
from core.schemas.pets import PetType
from report_worker.query import count_pets, snapshot, stream_pet_pages


async def test_counts_and_rows_come_from_one_snapshot(
    db: Database, insert_pets: Callable[..., Awaitable[Any]]
) -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    await insert_pets([("Rex", "dog", t), ("Tom", "cat", t), ("Kitty", "cat", t)])
    async with snapshot(db.engine) as conn:
        counts = await count_pets(conn)
        # Another client adds a pet after the report has counted, before it streams.
        async with db.engine.begin() as other:
            await other.exec_driver_sql(
                "INSERT INTO pets (id, name, pet_type) VALUES (gen_random_uuid(), 'Late', 'cat')"
            )
        names = [pet.name async for page in stream_pet_pages(conn, 1) for pet in page]
    assert counts.total == 3 == len(names)
    assert counts.by_type[PetType.cat] == 2
    assert list(counts.by_type) == list(PetType)  # every type, in a stable order
    assert "Late" not in names
