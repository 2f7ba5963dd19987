"""User accounts: creation and credential checks (keyword-only, session passed in)."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import User
from core.passwords import hash_password, verify_password

USERNAME_MAX = 64


async def get_user_by_username(*, session: AsyncSession, username: str) -> User | None:
    if "\x00" in username:  # PostgreSQL text cannot hold NUL, so no such user exists
        return None
    result = await session.exec(select(User).where(User.username == username))
    return result.first()


async def ensure_user(*, session: AsyncSession, username: str, password: str) -> bool:
    """Create the user unless one with that name exists. Returns True when it was created."""
    if not 1 <= len(username) <= USERNAME_MAX:
        raise ValueError(f"username must be 1-{USERNAME_MAX} characters")
    if len(password) < 8:
        raise ValueError("password must be at least 8 characters")
    hashed = await hash_password(password)
    stmt = (
        insert(User)
        .values(username=username, hashed_password=hashed, is_active=True)
        .on_conflict_do_nothing(index_elements=["username"])
        .returning(col(User.id))
    )
    created = (await session.exec(stmt)).first() is not None
    await session.commit()
    return created


async def authenticate(*, session: AsyncSession, username: str, password: str) -> User | None:
    user = await get_user_by_username(session=session, username=username)
    ok = await verify_password(user.hashed_password if user else None, password)
    return user if ok and user is not None else None
