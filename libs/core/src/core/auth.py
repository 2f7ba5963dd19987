"""JWT issue/verify and the FastAPI pieces both APIs share: /auth/token and the current user."""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Annotated, Any

import jwt
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from sqlalchemy import text

from core import login_limits
from core.db import Database
from core.schemas.auth import Token
from core.settings import AuthSettings
from core.users import authenticate
from core.web import SessionDep, settings_of
from core.web_errors import error_responses

log = logging.getLogger(__name__)

TOKEN_URL = "/auth/token"
_BEARER = {"WWW-Authenticate": "Bearer"}

oauth2_scheme = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


def warn_if_placeholder_secret(settings: AuthSettings) -> None:
    if settings.uses_placeholder_secret:
        log.warning(
            "JWT_SECRET is the development placeholder: anyone can forge tokens; "
            "set a real one (openssl rand -hex 32) before this service is reachable by others"
        )


def create_access_token(user_id: uuid.UUID, settings: AuthSettings) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + timedelta(seconds=settings.access_token_ttl_seconds),
    }
    return jwt.encode(
        claims, settings.jwt_secret.get_secret_value(), algorithm=settings.jwt_algorithm
    )


def _verified_claims(token: str, settings: AuthSettings) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(
        token,
        settings.jwt_secret.get_secret_value(),
        algorithms=[settings.jwt_algorithm],
        options={"require": ["sub", "exp"]},
    )
    return claims


class VerifiedTokens:
    """Tokens this process has already verified, with their subject and expiry. A client sends
    the same token for up to an hour, and verifying its HMAC and claims again on every request
    costs more than the rest of a cheap request. Only a token that verified is remembered, by
    its full text, so a forged or altered token is never taken from here; the expiry is still
    checked each time."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, uuid.UUID]] = OrderedDict()

    def subject(self, token: str, settings: AuthSettings) -> uuid.UUID:
        """The user id of a valid token; raises jwt.PyJWTError or ValueError otherwise."""
        entry = self._entries.get(token)
        if entry is not None:
            if time.time() < entry[0]:
                return entry[1]
            del self._entries[token]
            raise jwt.ExpiredSignatureError("Signature has expired")
        claims = _verified_claims(token, settings)
        user_id = uuid.UUID(str(claims["sub"]))
        self._entries[token] = (float(claims["exp"]), user_id)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return user_id


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers=_BEARER)


async def _auth_settings(request: Request) -> AuthSettings:
    return settings_of(request, AuthSettings)


AuthSettingsDep = Annotated[AuthSettings, Depends(_auth_settings)]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request with a valid token, of an active user."""

    id: uuid.UUID


class Standing(Enum):
    active = "active"
    disabled = "disabled"
    unknown = "unknown"  # deleted, or never existed


_STANDING = text("SELECT is_active FROM users WHERE id = :id")


class StandingCache:
    """A user's standing, remembered for `ttl` seconds in this process, so a request with a
    token costs no database round trip. The price: a user disabled or deleted keeps access
    for up to `ttl` seconds on a replica that saw them just before (AUTH_USER_CACHE_SECONDS;
    0 reads the database on every request)."""

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._entries: OrderedDict[uuid.UUID, tuple[float, Standing]] = OrderedDict()

    def get(self, user_id: uuid.UUID) -> Standing | None:
        entry = self._entries.get(user_id)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, user_id: uuid.UUID, standing: Standing) -> None:
        if self._ttl <= 0:
            return
        self._entries[user_id] = (time.monotonic() + self._ttl, standing)
        self._entries.move_to_end(user_id)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


async def standing_of(request: Request, db: Database, user_id: uuid.UUID) -> Standing:
    cache: StandingCache = request.app.state.standings
    standing = cache.get(user_id)
    if standing is None:
        async with db.session() as session:
            active = (await session.execute(_STANDING, {"id": user_id})).scalar_one_or_none()
        standing = (
            Standing.unknown
            if active is None
            else (Standing.active if active else Standing.disabled)
        )
        cache.put(user_id, standing)
    return standing


async def optional_user(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Caller | None:
    """The caller, if a bearer token was sent; a bad token is an error, not anonymity.

    It reads the settings and the database from the app's state rather than through more
    dependencies: it runs on every request, and each dependency costs FastAPI a resolution."""
    if token is None:
        return None
    settings = settings_of(request, AuthSettings)
    db: Database = request.app.state.db
    try:
        user_id = request.app.state.verified_tokens.subject(token, settings)
    except jwt.ExpiredSignatureError:
        raise unauthorized("Token has expired; get a new one from POST /auth/token") from None
    except (jwt.PyJWTError, ValueError):
        raise unauthorized("Invalid bearer token") from None
    standing = await standing_of(request, db, user_id)
    if standing is Standing.unknown:
        raise unauthorized("Token refers to an unknown user")
    if standing is Standing.disabled:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="User is disabled", headers=_BEARER)
    return Caller(user_id)


async def current_user(user: Annotated[Caller | None, Depends(optional_user)]) -> Caller:
    if user is None:
        raise unauthorized("Not authenticated: send 'Authorization: Bearer <token>'")
    return user


CurrentUser = Annotated[Caller, Depends(current_user)]
OptionalUser = Annotated[Caller | None, Depends(optional_user)]

AUTH_ERRORS = (401, 403)

auth_router = APIRouter(tags=["auth"])


@auth_router.post(
    TOKEN_URL,
    response_model=Token,
    summary="Get a bearer token (OAuth2 password flow)",
    responses=error_responses(
        [403, 413, 422, 503],
        {
            401: "Wrong username or password",
            429: "Too many failed logins for this username or from this address; "
            "try again after `Retry-After` seconds",
        },
    ),
)
async def issue_token(
    request: Request,
    session: SessionDep,
    settings: AuthSettingsDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> Token:
    keys = login_limits.LoginKeys.of(form.username, request.client.host if request.client else None)
    if (wait := await login_limits.retry_after(session, keys, settings)) is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"Too many failed logins; try again in {wait} seconds",
            headers={"Retry-After": str(wait)},
        )
    user = await authenticate(session=session, username=form.username, password=form.password)
    if user is None:
        await login_limits.record_failure(session, keys, settings)
        raise unauthorized("Incorrect username or password")
    await login_limits.record_success(session, keys)
    if not user.is_active:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="User is disabled", headers=_BEARER)
    return Token(
        access_token=create_access_token(user.id, settings),
        expires_in=settings.access_token_ttl_seconds,
    )


def install_auth(app: FastAPI, settings: AuthSettings) -> None:
    """POST /auth/token, and the per-process caches of verified tokens and users' standing."""
    app.state.verified_tokens = VerifiedTokens()
    app.state.standings = StandingCache(settings.auth_user_cache_seconds)
    app.include_router(auth_router)
