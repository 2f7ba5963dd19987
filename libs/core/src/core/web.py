"""FastAPI wiring both APIs share: DB session dependency, error handlers, request ids, health.

Errors are always JSON: 422 with field detail, 503 when the database cannot be reached, and a
plain 500 (logged with its trace, never sent) for anything unexpected.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, TypeVar

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.db import Database
from core.logging import request_id_var
from core.schemas.errors import ErrorResponse
from core.settings import BaseServiceSettings

log = logging.getLogger(__name__)

S = TypeVar("S", bound=BaseServiceSettings)

DB_UNAVAILABLE = "Database is unavailable; try again shortly"


def settings_of(request: Request, kind: type[S]) -> S:
    settings = request.app.state.settings
    if not isinstance(settings, kind):
        raise TypeError(f"app settings are {type(settings).__name__}, not {kind.__name__}")
    return settings


# Dependencies are `async def` even when they do no I/O: FastAPI runs plain `def` ones in a
# thread pool, a thread hop per dependency per request.
async def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_session(db: Annotated[Database, Depends(get_db)]) -> AsyncIterator[AsyncSession]:
    async with db.session() as session:
        yield session


DbDep = Annotated[Database, Depends(get_db)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]


def is_database_unavailable(exc: BaseException) -> bool:
    """True for failures to reach the database, as opposed to bugs or bad statements."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        exc = exc.orig or exc
    return isinstance(
        exc,
        OSError
        | asyncio.TimeoutError
        | asyncpg.exceptions.ConnectionDoesNotExistError
        | asyncpg.exceptions.CannotConnectNowError
        | asyncpg.exceptions.TooManyConnectionsError
        | asyncpg.exceptions.InterfaceError,
    )


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    if is_database_unavailable(exc):
        log.warning("database unavailable: %s", exc.__class__.__name__)
        return JSONResponse(
            {"detail": DB_UNAVAILABLE},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "Internal server error"}, status_code=500)


class RequestIdMiddleware:
    """Tag each request with an id (taken from X-Request-ID or made), for logs and the client."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming[:64] if incoming else uuid.uuid4().hex
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"].append((b"x-request-id", request_id.encode("latin-1")))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


health_router = APIRouter(tags=["health"])


@health_router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@health_router.get(
    "/readyz",
    summary="Readiness: the database answers",
    responses={503: {"model": ErrorResponse, "description": "Database unreachable"}},
)
async def readyz(db: DbDep) -> JSONResponse:
    try:
        await asyncio.wait_for(db.ping(), timeout=3)
    except Exception as exc:  # any failure to ping means not ready
        log.warning("readiness check failed: %s", exc.__class__.__name__)
        return JSONResponse({"status": "unavailable", "detail": DB_UNAVAILABLE}, status_code=503)
    return JSONResponse({"status": "ok"})


def install_common(app: FastAPI) -> None:
    """Error handlers, request ids and health routes, identical in every API."""
    # Specific classes go through Starlette's ExceptionMiddleware, which answers without
    # re-raising; the bare Exception handler is the last resort for bugs.
    for kind in (
        DBAPIError,
        PoolTimeoutError,
        OSError,
        asyncio.TimeoutError,
        asyncpg.PostgresError,
    ):
        app.add_exception_handler(kind, _unhandled)
    app.add_exception_handler(Exception, _unhandled)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(health_router)
