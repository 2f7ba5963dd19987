"""Pet persistence: plain async functions over a session, keyword-only, no HTTP in sight."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, tuple_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Pet
from core.models.base import utcnow
from core.pagination import decode_cursor, encode_cursor
from core.schemas.pets import PetCreate, PetPage, PetPublic, PetType, PetUpdate

LIKE_ESCAPE = "\\"


def escape_like(text: str) -> str:
    """Make `text` match literally inside a LIKE pattern (so '%' and '_' are not wildcards)."""
    return (
        text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )


async def create_pet(*, session: AsyncSession, data: PetCreate) -> Pet:
    now = utcnow()
    pet = Pet(name=data.name, pet_type=data.pet_type.value, created_at=now, updated_at=now)
    session.add(pet)
    await session.commit()
    return pet


async def get_pet(*, session: AsyncSession, pet_id: uuid.UUID) -> Pet | None:
    return await session.get(Pet, pet_id)


async def list_pets(
    *,
    session: AsyncSession,
    limit: int,
    cursor: str | None = None,
    pet_type: PetType | None = None,
    name: str | None = None,
) -> PetPage:
    """One page in (created_at, id) order. Raises core.pagination.InvalidCursor."""
    stmt = select(Pet)
    if cursor is not None:
        after_created_at, after_id = decode_cursor(cursor)
        # Row comparison: Postgres walks ix_pets_created_at_id straight from the cursor.
        stmt = stmt.where(
            tuple_(col(Pet.created_at), col(Pet.id)) > tuple_(after_created_at, after_id)
        )
    if pet_type is not None:
        stmt = stmt.where(col(Pet.pet_type) == pet_type.value)
    if name:
        stmt = stmt.where(col(Pet.name).ilike(f"%{escape_like(name)}%", escape=LIKE_ESCAPE))
    stmt = stmt.order_by(col(Pet.created_at), col(Pet.id)).limit(limit + 1)
    rows = list((await session.exec(stmt)).all())
    await session.commit()  # end the read transaction before the response is sent
    page, more = rows[:limit], len(rows) > limit
    last = page[-1] if page else None
    next_cursor = encode_cursor(last.created_at, last.id) if more and last else None
    return PetPage(items=[PetPublic.model_validate(p) for p in page], next_cursor=next_cursor)


async def _update(
    *, session: AsyncSession, pet_id: uuid.UUID, values: dict[str, object]
) -> Pet | None:
    # One UPDATE ... RETURNING: atomic, one round trip, no read-modify-write race.
    stmt = (
        update(Pet)
        .where(col(Pet.id) == pet_id)
        .values(**values, updated_at=utcnow())
        .returning(Pet)
        .execution_options(populate_existing=True)
    )
    pet: Pet | None = (await session.exec(stmt)).scalars().first()
    await session.commit()
    return pet


async def replace_pet(*, session: AsyncSession, pet_id: uuid.UUID, data: PetCreate) -> Pet | None:
    values: dict[str, object] = {"name": data.name, "pet_type": data.pet_type.value}
    return await _update(session=session, pet_id=pet_id, values=values)


async def update_pet(*, session: AsyncSession, pet_id: uuid.UUID, data: PetUpdate) -> Pet | None:
    """Change only the fields sent; with none sent, nothing is written."""
    values: dict[str, object] = {}
    if "name" in data.model_fields_set and data.name is not None:
        values["name"] = data.name
    if "pet_type" in data.model_fields_set and data.pet_type is not None:
        values["pet_type"] = data.pet_type.value
    if not values:
        return await get_pet(session=session, pet_id=pet_id)
    return await _update(session=session, pet_id=pet_id, values=values)


async def delete_pet(*, session: AsyncSession, pet_id: uuid.UUID) -> bool:
    stmt = delete(Pet).where(col(Pet.id) == pet_id).returning(col(Pet.id))
    deleted = (await session.exec(stmt)).first() is not None
    await session.commit()
    return deleted
