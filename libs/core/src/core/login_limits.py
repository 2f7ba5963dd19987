"""Throttling password guessing on POST /auth/token, shared by every API replica.

Failed logins are counted per username and per client address in PostgreSQL, in a fixed
window that starts with the first failure. Once either count reaches its limit, logins for
that username (or from that address) answer 429 until the window ends, before any password is
checked, so guessing cannot go faster than the limit whatever the number of replicas. A
successful login clears its username's count (not its address's: an attacker could otherwise
reset it with an account of its own).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from core.settings import AuthSettings

_RETRY_AFTER = text(
    """
    SELECT extract(epoch FROM max(window_started_at) + make_interval(secs => :window) - now())
    FROM login_failures
    WHERE window_started_at > now() - make_interval(secs => :window)
      AND ((key = :user_key AND :max_user > 0 AND failures >= :max_user)
        OR (key = :addr_key AND :max_addr > 0 AND failures >= :max_addr))
    """
)
_FORGET_EXPIRED = text(
    "DELETE FROM login_failures WHERE window_started_at <= now() - make_interval(secs => :window)"
)
_COUNT_FAILURE = text(
    """
    INSERT INTO login_failures (key, failures, window_started_at) VALUES (:key, 1, now())
    ON CONFLICT (key) DO UPDATE SET failures = login_failures.failures + 1
    """
)
_FORGET = text("DELETE FROM login_failures WHERE key = :key")


@dataclass(frozen=True, slots=True)
class LoginKeys:
    user: str
    address: str

    @classmethod
    def of(cls, username: str, address: str | None) -> LoginKeys:
        # Hashed: a username is any text up to the body limit (NUL included), a key is not.
        digest = hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()
        return cls(user=f"user:{digest}", address=f"addr:{address or 'unknown'}")


async def retry_after(session: AsyncSession, keys: LoginKeys, settings: AuthSettings) -> int | None:
    """Seconds until these keys may try again, or None if they may try now."""
    seconds = (
        await session.execute(
            _RETRY_AFTER,
            {
                "window": settings.auth_failure_window_seconds,
                "user_key": keys.user,
                "addr_key": keys.address,
                "max_user": settings.auth_max_failures_per_username,
                "max_addr": settings.auth_max_failures_per_address,
            },
        )
    ).scalar_one()
    return None if seconds is None else max(1, math.ceil(seconds))


async def record_failure(session: AsyncSession, keys: LoginKeys, settings: AuthSettings) -> None:
    await session.execute(_FORGET_EXPIRED, {"window": settings.auth_failure_window_seconds})
    await session.execute(_COUNT_FAILURE, [{"key": keys.user}, {"key": keys.address}])
    await session.commit()


async def record_success(session: AsyncSession, keys: LoginKeys) -> None:
    await session.execute(_FORGET, {"key": keys.user})
    await session.commit()
