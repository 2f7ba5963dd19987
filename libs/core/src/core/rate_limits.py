"""Creates per caller per minute, counted in PostgreSQL so that every gateway replica shares
one count (a per-process counter would allow the limit once per replica).

Windows are calendar minutes (a fixed-window counter: a caller can reach twice the limit
across a minute boundary, never more). The count is taken by the statement that stores the
jobs (`core.jobs.admit_many`): a create costs no extra round trip for it. Here: forgetting
old windows.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

_PRUNE = text("DELETE FROM rate_windows WHERE window_start < now() - interval '2 minutes'")


async def prune(session: AsyncSession) -> None:
    """Forget windows that can no longer matter."""
    await session.execute(_PRUNE)
