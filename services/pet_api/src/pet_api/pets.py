"""Pet persistence: one SQL statement per operation, built once, no ORM objects on the way.

Each returns the row as the API shows it (PetPublic), or None when there is no such pet.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, any_, bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Pet
from core.pagination import Page, keyset_page
from core.schemas.pets import PetCreate, PetPublic, PetType, PetUpdate

PETS: Table = Pet.__table__  # type: ignore[attr-defined]
COLUMNS = (PETS.c.id, PETS.c.name, PETS.c.pet_type, PETS.c.created_at, PETS.c.updated_at)
LIKE_ESCAPE = "\\"

_GET = select(*COLUMNS).where(PETS.c.id == bindparam("id"))
# The batched forms (pet_api.batches): many ids, or many new pets, in one statement. Each new
# pet gets its own clock_timestamp(), in the order sent, so pages list them in that order.
_GET_MANY = select(*COLUMNS).where(PETS.c.id == any_(bindparam("ids", type_=ARRAY(PETS.c.id.type))))
_CREATE_MANY = text(
    """
    INSERT INTO pets (id, name, pet_type, created_at, updated_at)
    SELECT r.id, r.name, r.pet_type, clock_timestamp(), clock_timestamp()
    FROM unnest(CAST(:ids AS uuid[]), CAST(:names AS text[]), CAST(:types AS text[]))
        WITH ORDINALITY AS r(id, name, pet_type, n)
    ORDER BY r.n
    RETURNING id, name, pet_type, created_at, updated_at
    """
).columns(*COLUMNS)
_DELETE = delete(PETS).where(PETS.c.id == bindparam("id")).returning(PETS.c.id)


def _updating(*fields: str) -> Any:
    return (
        update(PETS)
        .where(PETS.c.id == bindparam("pet_id"))
        .values(**{field: bindparam(field) for field in fields}, updated_at=func.now())
        .returning(*COLUMNS)
    )


# One statement per set of changed fields (PATCH may send either or both).
_UPDATES = {
    frozenset(fields): _updating(*fields)
    for fields in (("name", "pet_type"), ("name",), ("pet_type",))
}


def _pet(row: Any) -> PetPublic:
    return PetPublic.model_validate(row._mapping)


def escape_like(text: str) -> str:
    """Make `text` match literally inside a LIKE pattern (so '%' and '_' are not wildcards)."""
    return (
        text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )


async def get_pet(session: AsyncSession, pet_id: uuid.UUID) -> PetPublic | None:
    row = (await session.execute(_GET, {"id": pet_id})).first()
    return None if row is None else _pet(row)


async def get_many(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[PetPublic | None]:
    """The pets with these ids, in the same order (None where there is no such pet)."""
    rows = (await session.execute(_GET_MANY, {"ids": list(set(ids))})).all()
    found = {row.id: row for row in rows}
    return [None if (row := found.get(pet_id)) is None else _pet(row) for pet_id in ids]


async def create_many(session: AsyncSession, new_pets: Sequence[PetCreate]) -> list[PetPublic]:
    """New pets, in one INSERT; returned in the order given."""
    ids = [uuid.uuid4() for _ in new_pets]
    params = {
        "ids": ids,
        "names": [pet.name for pet in new_pets],
        "types": [pet.pet_type.value for pet in new_pets],
    }
    rows = {row.id: row for row in (await session.execute(_CREATE_MANY, params)).all()}
    return [_pet(rows[pet_id]) for pet_id in ids]


async def list_pets(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None = None,
    pet_type: PetType | None = None,
    name: str | None = None,
) -> Page[PetPublic]:
    """One page in (created_at, id) order. Raises core.pagination.InvalidCursor."""
    query = select(*COLUMNS)
    if pet_type is not None:
        query = query.where(PETS.c.pet_type == pet_type.value)
    if name:
        query = query.where(PETS.c.name.ilike(f"%{escape_like(name)}%", escape=LIKE_ESCAPE))
    return await keyset_page(
        session, query, PETS.c.created_at, PETS.c.id, _pet, limit=limit, cursor=cursor
    )


async def _update(
    session: AsyncSession, pet_id: uuid.UUID, values: dict[str, str]
) -> PetPublic | None:
    """One UPDATE ... RETURNING: atomic, one round trip, no read-modify-write race."""
    statement = _UPDATES[frozenset(values)]
    row = (await session.execute(statement, {"pet_id": pet_id, **values})).first()
    return None if row is None else _pet(row)


async def replace_pet(
    session: AsyncSession, pet_id: uuid.UUID, data: PetCreate
) -> PetPublic | None:
    return await _update(session, pet_id, {"name": data.name, "pet_type": data.pet_type.value})


async def update_pet(session: AsyncSession, pet_id: uuid.UUID, data: PetUpdate) -> PetPublic | None:
    """Change only the fields sent; with none sent, nothing is written."""
    values: dict[str, str] = {}
    if data.name is not None:
        values["name"] = data.name
    if data.pet_type is not None:
        values["pet_type"] = data.pet_type.value
    if not values:
        return await get_pet(session, pet_id)
    return await _update(session, pet_id, values)


async def delete_pet(session: AsyncSession, pet_id: uuid.UUID) -> bool:
    return (await session.execute(_DELETE, {"id": pet_id})).first() is not None
