"""Concurrent reads and creates share statements (pet_api.batches), each still answered alone."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from core.db import Database
from core.schemas.pets import PetCreate, PetType
from pet_api import pets


async def test_concurrent_creates_each_get_their_own_pet(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    names = [f"Pet {i:02d}" for i in range(40)]

    responses = await asyncio.gather(
        *(client.post("/pets", json={"name": n, "pet_type": "cat"}, headers=auth) for n in names)
    )

    assert [r.status_code for r in responses] == [201] * len(names)
    assert [r.json()["name"] for r in responses] == names
    assert len({r.json()["id"] for r in responses}) == len(names)
    for r in responses:
        assert r.headers["location"] == f"/pets/{r.json()['id']}"


async def test_concurrent_reads_each_get_their_own_answer(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    created = [
        (await client.post("/pets", json={"name": f"Dog {i}", "pet_type": "dog"}, headers=auth))
        for i in range(10)
    ]
    missing = str(uuid.uuid4())
    wanted = [c.headers["location"] for c in created] * 3 + [f"/pets/{missing}"] * 3

    responses = await asyncio.gather(*(client.get(url) for url in wanted))

    expected = [(200, c.json()) for c in created] * 3
    got = [(r.status_code, r.json()) for r in responses]
    assert got[:30] == expected
    assert [status for status, _ in got[30:]] == [404] * 3
    assert all(missing in body["detail"] for _, body in got[30:])


async def test_a_batch_keeps_its_order_in_the_listing(db: Database) -> None:
    batch = [PetCreate(name=f"Kit {i}", pet_type=PetType.cat) for i in range(25)]
    async with db.session() as session:
        stored = await pets.create_many(session, batch)
        page = await pets.list_pets(session, limit=100)

    assert [p.name for p in stored] == [p.name for p in batch]
    assert [p.id for p in page.items] == [p.id for p in stored]
    assert len({p.created_at for p in stored}) == len(stored)  # distinct times, in order


async def test_get_many_answers_duplicates_and_unknown_ids(db: Database) -> None:
    async with db.session() as session:
        (rex,) = await pets.create_many(session, [PetCreate(name="Rex", pet_type=PetType.dog)])
        unknown = uuid.uuid4()
        found = await pets.get_many(session, [rex.id, unknown, rex.id])

    assert found == [rex, None, rex]
