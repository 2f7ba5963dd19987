"""Keyset pagination over (created_at, id) with opaque cursors: stable under inserts, and no
OFFSET scans. One helper for every list (pets oldest first, jobs newest first)."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, tuple_
from sqlmodel.ext.asyncio.session import AsyncSession

T = TypeVar("T")


class InvalidCursor(ValueError):
    pass


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, row_id = raw.partition("|")
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None:
            raise ValueError("naive timestamp")
        return created_at, uuid.UUID(row_id)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor("Invalid cursor: pass back the next_cursor of a previous page") from exc


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


async def keyset_page(
    session: AsyncSession,
    query: Select[Any],
    created_at: ColumnElement[datetime],
    row_id: ColumnElement[uuid.UUID],
    to_item: Callable[[Any], T],
    *,
    limit: int,
    cursor: str | None,
    newest_first: bool = False,
) -> Page[T]:
    """One page of `query` in (created_at, id) order, after `cursor`. The query must select
    the two key columns; an index on them (after any equality filter) serves the scan.
    Raises InvalidCursor."""
    key = tuple_(created_at, row_id)
    if cursor is not None:
        after = tuple_(*decode_cursor(cursor))
        # A row comparison: PostgreSQL walks the index straight from the cursor.
        query = query.where(key < after if newest_first else key > after)
    order = (created_at.desc(), row_id.desc()) if newest_first else (created_at, row_id)
    rows = (await session.execute(query.order_by(*order).limit(limit + 1))).all()
    page, more = rows[:limit], len(rows) > limit
    last = page[-1] if page else None
    next_cursor = (
        encode_cursor(last._mapping[created_at], last._mapping[row_id]) if more and last else None
    )
    return Page([to_item(row) for row in page], next_cursor)
