"""Password hashing, JWT issue/verify and user accounts (against the real database)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from sqlmodel import select

import core.passwords
from core.auth import VerifiedTokens, create_access_token
from core.db import Database
from core.models import User
from core.passwords import hash_password, verify_password
from core.settings import AuthSettings
from core.users import USERNAME_MAX, authenticate, ensure_user, get_user_by_username

SECRET = "test-secret-" + "0123456789abcdef" * 4  # long enough for HS512 (64 bytes)
OTHER_SECRET = "other-secret-" + "0123456789abcdef" * 4


def auth_settings(**overrides: object) -> AuthSettings:
    values: dict[str, object] = {"jwt_secret": SECRET, "environment": "test"}
    values.update(overrides)
    return AuthSettings(**values)  # type: ignore[arg-type]


# --- passwords -------------------------------------------------------------------------------


async def test_hash_verify_round_trip() -> None:
    hashed = await hash_password("correct horse battery")
    assert hashed.startswith("$argon2")
    assert "correct horse battery" not in hashed
    assert await verify_password(hashed, "correct horse battery") is True
    assert await verify_password(hashed, "wrong horse battery") is False


async def test_hashes_are_salted() -> None:
    assert await hash_password("same-password") != await hash_password("same-password")


async def test_corrupt_hash_is_false_not_an_error() -> None:
    assert await verify_password("not-a-hash", "whatever-password") is False


async def test_unknown_user_still_verifies_against_dummy_hash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checked: list[str] = []
    real_verify = core.passwords._verify

    def spy(hashed: str, password: str) -> bool:
        checked.append(hashed)
        return real_verify(hashed, password)

    monkeypatch.setattr(core.passwords, "_verify", spy)
    # Even the dummy hash's own password must not log anyone in.
    assert await verify_password(None, "dummy-password-for-timing") is False
    assert checked == [core.passwords._DUMMY_HASH]


# --- tokens ----------------------------------------------------------------------------------


def test_token_round_trip() -> None:
    settings = auth_settings()
    user_id = uuid.uuid4()
    token = create_access_token(user_id, settings)
    assert VerifiedTokens().subject(token, settings) == user_id
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == settings.access_token_ttl_seconds


def test_expired_token_raises() -> None:
    past = datetime.now(UTC) - timedelta(minutes=5)
    token = jwt.encode(
        {"sub": str(uuid.uuid4()), "iat": past - timedelta(hours=1), "exp": past},
        SECRET,
        algorithm="HS256",
    )
    with pytest.raises(jwt.ExpiredSignatureError):
        VerifiedTokens().subject(token, auth_settings())


def test_token_from_another_secret_refused() -> None:
    token = create_access_token(uuid.uuid4(), auth_settings(jwt_secret=OTHER_SECRET))
    with pytest.raises(jwt.InvalidSignatureError):
        VerifiedTokens().subject(token, auth_settings())


def test_token_with_another_algorithm_refused() -> None:
    token = create_access_token(uuid.uuid4(), auth_settings(jwt_algorithm="HS512"))
    with pytest.raises(jwt.InvalidAlgorithmError):
        VerifiedTokens().subject(token, auth_settings(jwt_algorithm="HS256"))


def test_unsigned_token_refused() -> None:
    exp = datetime.now(UTC) + timedelta(minutes=5)
    token = jwt.encode({"sub": str(uuid.uuid4()), "exp": exp}, key="", algorithm="none")
    with pytest.raises(jwt.PyJWTError):
        VerifiedTokens().subject(token, auth_settings())


def test_token_without_required_claims_refused() -> None:
    token = jwt.encode({"sub": str(uuid.uuid4())}, SECRET, algorithm="HS256")  # no exp
    with pytest.raises(jwt.MissingRequiredClaimError):
        VerifiedTokens().subject(token, auth_settings())


def test_token_with_non_uuid_subject_refused() -> None:
    exp = datetime.now(UTC) + timedelta(minutes=5)
    token = jwt.encode({"sub": "admin", "exp": exp}, SECRET, algorithm="HS256")
    with pytest.raises(ValueError, match="badly formed"):
        VerifiedTokens().subject(token, auth_settings())


def test_a_verified_token_is_remembered_but_still_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = auth_settings(access_token_ttl_seconds=60)
    tokens = VerifiedTokens()
    user_id = uuid.uuid4()
    token = create_access_token(user_id, settings)
    checks: list[str] = []
    real = jwt.decode

    def counting(*args: object, **kwargs: object) -> object:
        checks.append("decode")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jwt, "decode", counting)
    assert tokens.subject(token, settings) == user_id
    assert tokens.subject(token, settings) == user_id
    assert checks == ["decode"]  # verified once, remembered after

    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(jwt.ExpiredSignatureError):
        tokens.subject(token, settings)


def test_an_altered_token_is_never_taken_from_memory() -> None:
    settings = auth_settings()
    tokens = VerifiedTokens()
    token = create_access_token(uuid.uuid4(), settings)
    tokens.subject(token, settings)
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[:-2]}AA"
    with pytest.raises(jwt.PyJWTError):
        tokens.subject(forged, settings)


def test_remembered_tokens_are_bounded() -> None:
    settings = auth_settings()
    tokens = VerifiedTokens(max_entries=3)
    for _ in range(10):
        tokens.subject(create_access_token(uuid.uuid4(), settings), settings)
    assert len(tokens._entries) == 3


# --- users (real database) -------------------------------------------------------------------


async def test_ensure_user_creates_once(db: Database) -> None:
    async with db.session() as session:
        assert await ensure_user(session=session, username="alice", password="s3cret-pass")
        assert not await ensure_user(session=session, username="alice", password="another-pass")
    async with db.session() as session:
        users = (await session.exec(select(User))).all()
    assert [u.username for u in users] == ["alice"]
    assert users[0].is_active
    assert users[0].hashed_password.startswith("$argon2")
    # The second call changed nothing: the first password still works, the second does not.
    assert await verify_password(users[0].hashed_password, "s3cret-pass")
    assert not await verify_password(users[0].hashed_password, "another-pass")


async def test_authenticate(db: Database) -> None:
    async with db.session() as session:
        await ensure_user(session=session, username="bob", password="bobs-password")
        user = await authenticate(session=session, username="bob", password="bobs-password")
        assert user is not None
        assert user.username == "bob"
        assert await authenticate(session=session, username="bob", password="nope-nope") is None
        assert await authenticate(session=session, username="carol", password="x" * 10) is None
        assert await get_user_by_username(session=session, username="carol") is None


@pytest.mark.parametrize(
    ("username", "password", "error"),
    [
        ("", "long-enough", "username must be 1-64 characters"),
        ("u" * (USERNAME_MAX + 1), "long-enough", "username must be 1-64 characters"),
        ("dave", "short", "password must be at least 8 characters"),
    ],
)
async def test_ensure_user_validation(
    db: Database, username: str, password: str, error: str
) -> None:
    async with db.session() as session:
        with pytest.raises(ValueError, match=error):
            await ensure_user(session=session, username=username, password=password)
        assert (await session.exec(select(User))).all() == []


async def test_ensure_user_accepts_max_length_username(db: Database) -> None:
    async with db.session() as session:
        assert await ensure_user(session=session, username="u" * USERNAME_MAX, password="8chars!!")
