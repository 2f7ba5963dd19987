"""Assertions on API answers that every service's tests share."""

from __future__ import annotations

from typing import Any

import httpx


def field_error(resp: httpx.Response, loc: list[Any]) -> dict[str, Any]:
    """The one 422 error of `resp`, which must be at `loc`."""
    assert resp.status_code == 422, resp.text
    errors: list[dict[str, Any]] = resp.json()["detail"]
    assert [e["loc"] for e in errors] == [loc]
    return errors[0]
