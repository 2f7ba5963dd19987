"""Which failures mean "the database is unavailable" and how to say so in one line."""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import SQLAlchemyError

# Expected during an outage or a network blip: logged as one line, retried on the next tick.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    SQLAlchemyError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,  # connection refused, DNS, broken pipe
    TimeoutError,
)


def describe(exc: BaseException) -> str:
    """`ConnectionRefusedError: [Errno 111] ...`: the root cause, first line only.

    SQLAlchemy wraps driver errors and appends SQL and a help link; operators need the cause.
    """
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    message = str(root).strip().splitlines()
    return f"{type(root).__name__}: {message[0]}" if message else type(root).__name__
