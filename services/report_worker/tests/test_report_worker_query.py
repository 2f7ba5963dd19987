"""The snapshot: counts and rows agree even while pets are being added."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

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


async def test_pages_are_validated_pets_in_order(
    db: Database, insert_pets: Callable[..., Awaitable[Any]]
) -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    pets = await insert_pets([(f"pet {i}", "dog", t + timedelta(seconds=i)) for i in range(5)])
    async with snapshot(db.engine) as conn:
        pages = [page async for page in stream_pet_pages(conn, 2)]
    assert [len(page) for page in pages] == [2, 2, 1]
    got = [pet for page in pages for pet in page]
    assert [pet.id for pet in got] == [pet.id for pet in pets]
    assert got[0].pet_type is PetType.dog
    assert got[0].created_at == t


async def test_closing_the_stream_early_leaves_the_transaction_usable(
    db: Database, insert_pets: Callable[..., Awaitable[Any]]
) -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    await insert_pets([(f"pet {i}", "cat", t) for i in range(5)])
    async with snapshot(db.engine) as conn:
        async with aclosing(stream_pet_pages(conn, 2)) as pages:
            assert len(await anext(pages)) == 2  # the next page is already on its way
        assert (await conn.execute(text("SELECT count(*) FROM pets"))).scalar_one() == 5
