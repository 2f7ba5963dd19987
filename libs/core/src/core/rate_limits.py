"""Creates per caller per minute, counted in PostgreSQL so that every gateway replica shares
one count (a per-process counter would allow the limit once per replica).

Windows are calendar minutes (as a fixed-window counter: a caller can reach twice the limit
across a minute boundary, never more). Concurrent requests share one statement (the gateway
runs this through core.batching), so the check costs no extra round trip under load.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel.ext.asyncio.session import AsyncSession

# Rows in owner order: two replicas upserting the same owners lock them in the same order,
# so they queue behind each other instead of deadlocking.
_COUNT = text(
    """
    INSERT INTO rate_windows AS w (owner_id, window_start, count)
    SELECT r.owner_id, date_trunc('minute', now()), r.n
    FROM jsonb_to_recordset(:rows) AS r(owner_id uuid, n int)
    ORDER BY r.owner_id
    ON CONFLICT (owner_id, window_start) DO UPDATE SET count = w.count + excluded.count
    RETURNING owner_id, count,
        extract(epoch FROM date_trunc('minute', now()) + interval '1 minute' - now())
            AS resets_in
    """
).bindparams(bindparam("rows", type_=JSONB))
_PRUNE = text("DELETE FROM rate_windows WHERE window_start < now() - interval '2 minutes'")


@dataclass(frozen=True, slots=True)
class Standing:
    """A caller's creates in the current window, this one included."""

    count: int
    resets_in_seconds: float


async def count_creates(session: AsyncSession, owner_ids: Sequence[uuid.UUID]) -> list[Standing]:
    """Count one create for each entry of `owner_ids` (an owner may appear several times);
    each entry's standing, as if the entries came one after another."""
    wanted = Counter(owner_ids)
    rows = [{"owner_id": str(owner), "n": n} for owner, n in wanted.items()]
    totals = {
        owner: (count, float(resets_in))
        for owner, count, resets_in in await session.execute(_COUNT, {"rows": rows})
    }
    seen: Counter[uuid.UUID] = Counter()
    standings = []
    for owner in owner_ids:
        seen[owner] += 1
        total, resets_in = totals[owner]
        standings.append(Standing(total - wanted[owner] + seen[owner], resets_in))
    return standings


async def prune(session: AsyncSession) -> None:
    """Forget windows that can no longer matter."""
    await session.execute(_PRUNE)
