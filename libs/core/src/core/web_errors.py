"""How both APIs answer a request they cannot serve: always JSON, never a stack trace.

- 422 for anything the client sent wrong, as a list of field errors. A request whose body
  cannot even be read (not UTF-8, not JSON, broken multipart) is a 422 too: our APIs never
  answer 400. An error echoes at most a short, always-encodable prefix of the input.
- 413 (middleware) for a body over the service's limit, 503 while the database is unreachable,
  and a bare 500 (logged with its trace, never sent) for bugs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import asyncpg
from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from core.schemas.errors import ErrorResponse, ValidationErrorResponse

log = logging.getLogger(__name__)

DB_UNAVAILABLE = "Database is unavailable; try again shortly"
ECHO_MAX_CHARS = 64  # of any input a 422 repeats back
_TEXT_MAX_CHARS = 300  # of a message or rule parameter
_ECHO_MAX_INT = 10**18

# Descriptions of the error statuses, for the OpenAPI document; see `error_responses`.
STANDARD_ERRORS: Mapping[int, str] = {
    401: "Missing, invalid or expired bearer token",
    403: "The user is disabled",
    404: "Not found",
    409: "Conflict with the resource's current state",
    410: "Gone: the resource existed but was deleted",
    413: "Request body over the service's size limit",
    422: "Invalid input: `detail` lists each problem and where it is",
    429: "Too many requests: try again after `Retry-After` seconds",
    503: "A dependency (the database) is unavailable: try again shortly",
}


def error_responses(
    codes: Iterable[int], described: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: each code with its body model and description."""
    described = described or {}
    return {
        code: {
            "model": ValidationErrorResponse if code == 422 else ErrorResponse,
            "description": described.get(code, STANDARD_ERRORS[code]),
        }
        for code in sorted(set(codes) | set(described))
    }


def invalid(
    loc: Sequence[str | int], msg: str, *, kind: str = "value_error", value: Any = None
) -> RequestValidationError:
    """A 422 for a rule checked outside Pydantic, shaped like Pydantic's own errors."""
    return RequestValidationError([{"type": kind, "loc": tuple(loc), "msg": msg, "input": value}])


def _text(value: str, limit: int) -> str:
    """At most `limit` characters, and always valid UTF-8 (a lone surrogate becomes `\\ud800`)."""
    if len(value) > limit:
        value = value[:limit] + "…"
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _echo(value: Any) -> Any:
    """A short copy of a scalar input; None for objects and arrays (never a whole body)."""
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return value if abs(value) < _ECHO_MAX_INT else None
    if isinstance(value, str):
        return _text(value, ECHO_MAX_CHARS)
    return None


def safe_field_error(error: Mapping[str, Any]) -> dict[str, Any]:
    safe: dict[str, Any] = {
        "type": str(error.get("type", "value_error")),
        "loc": [
            part if isinstance(part, int) else _text(str(part), ECHO_MAX_CHARS)
            for part in error.get("loc", ())
        ],
        "msg": _text(str(error.get("msg", "")), _TEXT_MAX_CHARS),
        "input": _echo(error.get("input")),
    }
    if ctx := error.get("ctx"):
        safe["ctx"] = {
            str(k): _echo(v) if isinstance(v, int | float) else _text(str(v), 100)
            for k, v in ctx.items()
        }
    return safe


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(
        {"detail": [safe_field_error(e) for e in exc.errors()]},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


def _unreadable_body(exc: StarletteHTTPException) -> JSONResponse:
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        kind, msg = "json_invalid", "The body is not valid UTF-8"
    elif isinstance(cause, RecursionError):
        kind, msg = "json_invalid", "The JSON body is nested too deeply"
    elif isinstance(cause, ValueError):
        kind, msg = "json_invalid", f"The JSON body cannot be read: {cause}"
    else:
        kind, msg = "body_invalid", f"The body cannot be read: {exc.detail}"
    error = {"type": kind, "loc": ["body"], "msg": _text(msg, _TEXT_MAX_CHARS), "input": None}
    return JSONResponse({"detail": [error]}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def _allowed_methods(request: Request) -> str:
    """Every method of every route on this path: Starlette's 405 names only the first route's,
    where one path has a route per method (GET, PUT, PATCH, DELETE /pets/{id})."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, APIRoute) and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    # Only request parsing answers 400 here (FastAPI for JSON, Starlette for multipart).
    if exc.status_code == status.HTTP_400_BAD_REQUEST:
        return _unreadable_body(exc)
    if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        exc.headers = {**(exc.headers or {}), "Allow": _allowed_methods(request)}
    return await http_exception_handler(request, exc)


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


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
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
