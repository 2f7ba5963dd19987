"""JWT issue/verify and the FastAPI pieces both APIs share: /auth/token and the current user."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm

from core.models import User
from core.schemas.auth import Token
from core.schemas.errors import ErrorResponse
from core.settings import AuthSettings
from core.users import authenticate
from core.web import SessionDep, settings_of

TOKEN_URL = "/auth/token"
_BEARER = {"WWW-Authenticate": "Bearer"}

oauth2_scheme = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


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


def decode_access_token(token: str, settings: AuthSettings) -> uuid.UUID:
    """Return the user id in a valid token; raise jwt.PyJWTError or ValueError otherwise."""
    claims = jwt.decode(
        token,
        settings.jwt_secret.get_secret_value(),
        algorithms=[settings.jwt_algorithm],
        options={"require": ["sub", "exp"]},
    )
    return uuid.UUID(str(claims["sub"]))


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers=_BEARER)


async def _auth_settings(request: Request) -> AuthSettings:
    return settings_of(request, AuthSettings)


AuthSettingsDep = Annotated[AuthSettings, Depends(_auth_settings)]


async def optional_user(
    session: SessionDep,
    settings: AuthSettingsDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> User | None:
    """The caller, if a bearer token was sent; a bad token is an error, not anonymity."""
    if token is None:
        return None
    try:
        user_id = decode_access_token(token, settings)
    except jwt.ExpiredSignatureError:
        raise unauthorized("Token has expired; get a new one from POST /auth/token") from None
    except (jwt.PyJWTError, ValueError):
        raise unauthorized("Invalid bearer token") from None
    user = await session.get(User, user_id)
    if user is None:
        raise unauthorized("Token refers to an unknown user")
    if not user.is_active:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="User is disabled", headers=_BEARER)
    return user


async def current_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise unauthorized("Not authenticated: send 'Authorization: Bearer <token>'")
    return user


CurrentUser = Annotated[User, Depends(current_user)]
OptionalUser = Annotated[User | None, Depends(optional_user)]

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing, invalid or expired bearer token"},
    403: {"model": ErrorResponse, "description": "The user is disabled"},
}

auth_router = APIRouter(tags=["auth"])


@auth_router.post(
    TOKEN_URL,
    response_model=Token,
    summary="Get a bearer token (OAuth2 password flow)",
    responses={401: {"model": ErrorResponse, "description": "Wrong username or password"}},
)
async def issue_token(
    session: SessionDep,
    settings: AuthSettingsDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> Token:
    user = await authenticate(session=session, username=form.username, password=form.password)
    if user is None:
        raise unauthorized("Incorrect username or password")
    if not user.is_active:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="User is disabled", headers=_BEARER)
    return Token(
        access_token=create_access_token(user.id, settings),
        expires_in=settings.access_token_ttl_seconds,
    )
