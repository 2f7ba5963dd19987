"""Hostile input gets a clear 4xx, never a 500: the cases found by trying to break the API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from core.web_errors import ECHO_MAX_CHARS
from testkit.http import field_error

JSON = {"Content-Type": "application/json"}
LIMIT = 16 * 1024  # PET_API_MAX_BODY_BYTES' default


@pytest.mark.parametrize(
    ("raw", "loc", "echoed"),
    [
        # JSON can spell a lone UTF-16 surrogate, which no UTF-8 text (nor PostgreSQL) can hold.
        (rb'{"name": "x\ud800", "pet_type": "cat"}', ["body", "name"], "x\\ud800"),
        (rb'{"name": "Rex", "pet_type": "\udfff"}', ["body", "pet_type"], "\\udfff"),
        # A key Pydantic cannot even read: the error is the body's, the key echoed escaped.
        (rb'{"name": "Rex", "pet_type": "cat", "\ud800": 1}', ["body"], "\\ud800"),
    ],
)
async def test_a_lone_surrogate_is_a_422_naming_the_field(
    client: httpx.AsyncClient, auth: dict[str, str], raw: bytes, loc: list[Any], echoed: str
) -> None:
    resp = await client.post("/pets", content=raw, headers={**auth, **JSON})

    assert field_error(resp, loc)["input"] == echoed
    assert (await client.get("/pets")).json()["items"] == []


async def test_a_422_echoes_only_a_short_prefix_of_the_input(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    name = "x" * 5000

    resp = await client.post("/pets", json={"name": name, "pet_type": "dog"}, headers=auth)

    error = field_error(resp, ["body", "name"])
    assert error["input"] == "x" * ECHO_MAX_CHARS + "…"
    assert len(resp.content) < 1000


async def test_a_422_for_a_missing_field_never_echoes_the_whole_body(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    resp = await client.post("/pets", json={"name": "y" * 10_000}, headers=auth)

    assert resp.status_code == 422
    assert len(resp.content) < 1000


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
async def test_a_body_over_the_limit_is_a_json_413_before_parsing(
    client: httpx.AsyncClient, auth: dict[str, str], method: str
) -> None:
    big = b'{"name": "' + b"x" * (10 * 1024 * 1024) + b'", "pet_type": "dog"}'
    path = "/pets" if method == "POST" else "/pets/6f1c2a9e-3b7d-4c1e-9a58-0d2f4b6e8a10"

    resp = await client.request(method, path, content=big, headers={**auth, **JSON})

    assert resp.status_code == 413
    assert resp.headers["content-type"] == "application/json"
    assert str(LIMIT) in resp.json()["detail"]


async def test_a_streamed_body_without_length_is_cut_off_at_the_limit(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"name": "'
        for _ in range(1000):  # up to 64 MB, if nobody stopped reading
            sent += 1
            yield b"x" * 65536

    resp = await client.post("/pets", content=chunks(), headers={**auth, **JSON})

    assert resp.status_code == 413
    assert "limit" in resp.json()["detail"]
    assert sent < 10  # reading stopped right after the limit


async def test_a_body_just_under_the_limit_is_read(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    body = b'{"name": "Rex", "pet_type": "dog"' + b" " * (LIMIT - 40) + b"}"
    assert len(body) <= LIMIT

    resp = await client.post("/pets", content=body, headers={**auth, **JSON})

    assert resp.status_code == 201, resp.text


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": "R\xe9x", "pet_type": "dog"}',  # Latin-1, not UTF-8
        b'{"name": "\xff\xfe", "pet_type": "dog"}',
        b"\xc3\x28",
    ],
)
async def test_a_body_that_is_not_utf8_is_a_422_like_any_unreadable_json(
    client: httpx.AsyncClient, auth: dict[str, str], raw: bytes
) -> None:
    resp = await client.post("/pets", content=raw, headers={**auth, **JSON})

    error = field_error(resp, ["body"])
    assert error["type"] == "json_invalid"
    assert "UTF-8" in error["msg"]


async def test_json_nested_too_deeply_is_a_422(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    raw = b"[" * 5000 + b"]" * 5000

    resp = await client.post("/pets", content=raw, headers={**auth, **JSON})

    assert resp.status_code == 422
    assert resp.json()["detail"][0]["type"] == "json_invalid"


async def test_patch_null_is_refused_and_the_spec_does_not_offer_it(
    client: httpx.AsyncClient, auth: dict[str, str], new_pet: Any
) -> None:
    pet = await new_pet()
    spec = (await client.get("/openapi.json")).json()
    update = spec["components"]["schemas"]["PetUpdate"]["properties"]

    for field in ("name", "pet_type"):
        resp = await client.patch(f"/pets/{pet['id']}", json={field: None}, headers=auth)
        error = field_error(resp, ["body", field])
        assert "not null" in error["msg"]
        assert "null" not in str(update[field])  # neither `type: null` nor `default: null`


async def test_omitted_patch_fields_stay_as_they_were(
    client: httpx.AsyncClient, auth: dict[str, str], new_pet: Any
) -> None:
    pet = await new_pet("Rex", "dog")

    resp = await client.patch(f"/pets/{pet['id']}", json={"pet_type": "cat"}, headers=auth)

    assert resp.status_code == 200
    assert (resp.json()["name"], resp.json()["pet_type"]) == ("Rex", "cat")
