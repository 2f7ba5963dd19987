"""Invalid input is a 422 whose detail names the field and the rule, and nothing is stored."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

ALLOWED = "'cat', 'dog', 'bird', 'fish', 'rabbit', 'hamster', 'reptile' or 'other'"


@pytest.mark.parametrize(
    ("body", "loc", "msg_part"),
    [
        ({"name": "", "pet_type": "dog"}, ["body", "name"], "at least 1 character"),
        ({"name": "   ", "pet_type": "dog"}, ["body", "name"], "must not be blank"),
        ({"name": "x" * 101, "pet_type": "dog"}, ["body", "name"], "at most 100 characters"),
        ({"name": "Rex", "pet_type": "dragon"}, ["body", "pet_type"], ALLOWED),
        ({"name": "Rex", "pet_type": ""}, ["body", "pet_type"], ALLOWED),
        ({"name": "Rex"}, ["body", "pet_type"], "Field required"),
        ({"pet_type": "dog"}, ["body", "name"], "Field required"),
        ({"name": 7, "pet_type": "dog"}, ["body", "name"], "valid string"),
        ({"name": "Re\x00x", "pet_type": "dog"}, ["body", "name"], "control characters"),
        ({"name": "Re\nx", "pet_type": "dog"}, ["body", "name"], "control characters"),
        ({"name": "Rex", "pet_type": "dog", "age": 3}, ["body", "age"], "Extra inputs"),
        ({"name": "Rex", "pet_type": "dog", "id": "x"}, ["body", "id"], "Extra inputs"),
    ],
)
async def test_create_rejects_invalid_bodies(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    body: dict[str, Any],
    loc: list[str],
    msg_part: str,
) -> None:
    resp = await client.post("/pets", json=body, headers=auth)

    assert resp.status_code == 422
    errors = resp.json()["detail"]
    assert [e["loc"] for e in errors] == [loc]
    assert msg_part in errors[0]["msg"]
    assert (await client.get("/pets")).json()["items"] == []


async def test_create_rejects_a_body_that_is_not_json(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    resp = await client.post(
        "/pets", content=b"{not json", headers={**auth, "Content-Type": "application/json"}
    )

    assert resp.status_code == 422
    assert resp.json()["detail"][0]["type"] == "json_invalid"


async def test_name_is_trimmed_and_100_characters_fit(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    longest = "x" * 100

    padded = await client.post("/pets", json={"name": "  Rex  ", "pet_type": "dog"}, headers=auth)
    full = await client.post("/pets", json={"name": longest, "pet_type": "dog"}, headers=auth)

    assert padded.status_code == 201
    assert padded.json()["name"] == "Rex"
    assert full.status_code == 201
    assert full.json()["name"] == longest


async def test_the_length_limit_counts_what_was_sent(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    # As the OpenAPI document says (maxLength 100): the limit is checked before trimming.
    resp = await client.post(
        "/pets", json={"name": " " + "x" * 100, "pet_type": "dog"}, headers=auth
    )

    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", "name"]


@pytest.mark.parametrize("sent", ["DOG", "Dog", " dog "])
async def test_pet_type_is_lowercased(
    client: httpx.AsyncClient, auth: dict[str, str], sent: str
) -> None:
    resp = await client.post("/pets", json={"name": "Rex", "pet_type": sent}, headers=auth)

    assert resp.status_code == 201
    assert resp.json()["pet_type"] == "dog"


async def test_put_and_patch_validate_like_create(
    client: httpx.AsyncClient, auth: dict[str, str], new_pet
) -> None:
    pet = await new_pet()
    url = f"/pets/{pet['id']}"
    bad = [
        client.put(url, json={"name": " ", "pet_type": "dog"}, headers=auth),
        client.put(url, json={"name": "A", "pet_type": "dragon"}, headers=auth),
        client.put(url, json={"name": "A", "pet_type": "dog", "x": 1}, headers=auth),
        client.patch(url, json={"name": "x" * 101}, headers=auth),
        client.patch(url, json={"pet_type": "dragon"}, headers=auth),
        client.patch(url, json={"owner": "me"}, headers=auth),
    ]

    for call in bad:
        resp = await call
        assert resp.status_code == 422, resp.request.content
    assert (await client.get(url)).json() == pet


async def test_list_rejects_an_unknown_pet_type_naming_the_allowed_ones(
    client: httpx.AsyncClient,
) -> None:
    resp = await client.get("/pets", params={"pet_type": "dragon"})

    assert resp.status_code == 422
    error = resp.json()["detail"][0]
    assert error["loc"] == ["query", "pet_type"]
    assert ALLOWED in error["msg"]


@pytest.mark.parametrize("limit", ["0", "-1", "101", "ten", ""])
async def test_list_rejects_a_bad_limit(client: httpx.AsyncClient, limit: str) -> None:
    resp = await client.get("/pets", params={"limit": limit})

    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["query", "limit"]


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!",
        "bm90IGEgY3Vyc29y",  # base64 of "not a cursor"
        "MjAyNi0xMS0yNFQxMjowMDowMHxub3QtYS11dWlk",  # a timestamp, then not a UUID
        "MjAyNi0xMS0yNFQxMjowMDowMHw2ZjFjMmE5ZS0zYjdkLTRjMWUtOWE1OC0wZDJmNGI2ZThhMTA",  # naive
    ],
)
async def test_list_rejects_a_malformed_cursor(client: httpx.AsyncClient, cursor: str) -> None:
    resp = await client.get("/pets", params={"cursor": cursor})

    assert resp.status_code == 422
    (error,) = resp.json()["detail"]
    assert error["loc"] == ["query", "cursor"]
    assert error["msg"] == "Invalid cursor: pass back the next_cursor of a previous page"


@pytest.mark.parametrize("name", ["", "a\x00b", "x" * 101])
async def test_list_rejects_a_bad_name_search(client: httpx.AsyncClient, name: str) -> None:
    resp = await client.get("/pets", params={"name": name})

    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["query", "name"]
