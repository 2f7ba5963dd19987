"""Errors as application/problem+json, shaped like the real API's."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"detail": self.detail, "status": self.status}
        if self.title is not None:
            body["title"] = self.title
        return {**body, **self.extra}


def unauthenticated() -> Problem:
    return Problem(401, "You did not pass a valid authentication token", title="Unauthenticated")


def not_found() -> Problem:
    return Problem(404, "Not found.", title="Not found")


def validation_failed(invalid_fields: list[dict[str, str]]) -> Problem:
    detail = "".join(f"- {f['field']}: {f['description']}\n" for f in invalid_fields)
    return Problem(422, detail, title="Input validation failed", invalid_fields=invalid_fields)


async def problem_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return JSONResponse(
        exc.body(), status_code=exc.status, headers=exc.headers, media_type=PROBLEM_JSON
    )
