"""Argon2 password hashing, run in a worker thread: a hash costs tens of milliseconds of CPU."""

from __future__ import annotations

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verified against when the user is unknown, so timing does not reveal which usernames exist.
_DUMMY_HASH = _hasher.hash("dummy-password-for-timing")


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(_hasher.hash, password)


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(hashed: str | None, password: str) -> bool:
    if hashed is None:
        await anyio.to_thread.run_sync(_verify, _DUMMY_HASH, password)
        return False
    return await anyio.to_thread.run_sync(_verify, hashed, password)
