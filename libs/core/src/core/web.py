"""FastAPI wiring both APIs share: the database session dependency, health routes, and
`install_common` (error handlers, request ids and access log, body size limit, metrics)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database
from core.metrics import metrics_router
from core.settings import BaseServiceSettings
from core.tracing import instrument_app
from core.web_errors import DB_UNAVAILABLE, error_responses, install_error_handlers
from core.web_middleware import BodySizeLimitMiddleware, RequestContextMiddleware

log = logging.getLogger(__name__)

S = TypeVar("S", bound=BaseServiceSettings)


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


def model_response(
    model: BaseModel, status_code: int = 200, *, headers: Mapping[str, str] | None = None
) -> Response:
    """A model as JSON, serialized once by pydantic-core. A route that returns the model itself
    has FastAPI validate it against `response_model` again, then serialize it: twice the work
    on a hot path. The route keeps `response_model=`, so the OpenAPI document is the same."""
    return Response(
        model.model_dump_json(),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )


SessionDep = Annotated[AsyncSession, Depends(get_session)]

health_router = APIRouter(tags=["health"])


@health_router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@health_router.get(
    "/readyz",
    summary="Readiness: the database answers",
    responses=error_responses([], {503: "Database unreachable"}),
)
async def readyz(db: DbDep) -> JSONResponse:
    try:
        async with asyncio.timeout(3):
            await db.ping()
    except Exception as exc:  # any failure to ping means not ready
        log.warning("readiness check failed: %s", exc.__class__.__name__)
        return JSONResponse({"status": "unavailable", "detail": DB_UNAVAILABLE}, status_code=503)
    return JSONResponse({"status": "ok"})


def install_common(app: FastAPI, *, max_body_bytes: int) -> None:
    """Error handlers, body limit, request ids and access log, health routes: every API."""
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(RequestContextMiddleware)  # outermost: it logs the 413s too
    instrument_app(app)  # with tracing on only (core.tracing.setup_tracing): server spans
    app.include_router(health_router)
    app.include_router(metrics_router)
