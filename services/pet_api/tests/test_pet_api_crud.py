"""Every /pets endpoint end to end against the real database."""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx
from sqlmodel import select

from core.db import Database
from core.models import Pet


async def test_create_returns_201_location_and_the_stored_pet(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    resp = await client.post("/pets", json={"name": "  Rex ", "pet_type": "DOG"}, headers=auth)

    assert resp.status_code == 201
    body = resp.json()
    assert body["name"] == "Rex"
    assert body["pet_type"] == "dog"
    assert body["created_at"] == body["updated_at"]
    assert datetime.fromisoformat(body["created_at"]).tzinfo is not None
    assert resp.headers["location"] == f"/pets/{body['id']}"
    async with db.session() as session:
        stored = (await session.exec(select(Pet))).all()
    assert [(p.id, p.name, p.pet_type) for p in stored] == [(uuid.UUID(body["id"]), "Rex", "dog")]


async def test_get_returns_the_pet_at_its_location(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    created = await client.post("/pets", json={"name": "Tom", "pet_type": "cat"}, headers=auth)

    resp = await client.get(created.headers["location"])

    assert resp.status_code == 200
    assert resp.json() == created.json()


async def test_put_replaces_every_field_and_bumps_updated_at(
    client: httpx.AsyncClient, auth: dict[str, str], new_pet
) -> None:
    pet = await new_pet("Rex", "dog")

    resp = await client.put(
        f"/pets/{pet['id']}", json={"name": "Polly", "pet_type": "bird"}, headers=auth
    )

    assert resp.status_code == 200
    body = resp.json()
    assert (body["id"], body["name"], body["pet_type"]) == (pet["id"], "Polly", "bird")
    assert body["created_at"] == pet["created_at"]
    assert body["updated_at"] > pet["updated_at"]
    assert (await client.get(f"/pets/{pet['id']}")).json() == body


async def test_put_needs_every_field(
    client: httpx.AsyncClient, auth: dict[str, str], new_pet
) -> None:
    pet = await new_pet()

    resp = await client.put(f"/pets/{pet['id']}", json={"name": "Only a name"}, headers=auth)

    assert resp.status_code == 422
    assert [e["loc"] for e in resp.json()["detail"]] == [["body", "pet_type"]]
    assert (await client.get(f"/pets/{pet['id']}")).json() == pet


async def test_patch_changes_only_the_fields_sent(
    client: httpx.AsyncClient, auth: dict[str, str], new_pet
) -> None:
    pet = await new_pet("Rex", "dog")

    renamed = await client.patch(f"/pets/{pet['id']}", json={"name": "Max"}, headers=auth)
    retyped = await client.patch(f"/pets/{pet['id']}", json={"pet_type": "Other"}, headers=auth)

    assert renamed.status_code == 200
    assert (renamed.json()["name"], renamed.json()["pet_type"]) == ("Max", "dog")
    assert renamed.json()["updated_at"] > pet["updated_at"]
    assert retyped.status_code == 200
    assert (retyped.json()["name"], retyped.json()["pet_type"]) == ("Max", "other")
    assert retyped.json()["updated_at"] > renamed.json()["updated_at"]
    assert retyped.json()["created_at"] == pet["created_at"]


async def test_patch_with_an_empty_body_changes_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], new_pet
) -> None:
    pet = await new_pet()

    resp = await client.patch(f"/pets/{pet['id']}", json={}, headers=auth)

    assert resp.status_code == 200
    body = resp.json()
    assert (body["name"], body["pet_type"], body["created_at"]) == (
        pet["name"],
        pet["pet_type"],
        pet["created_at"],
    )


async def test_patch_rejects_null(client: httpx.AsyncClient, auth: dict[str, str], new_pet) -> None:
    pet = await new_pet()

    for field in ("name", "pet_type"):
        resp = await client.patch(f"/pets/{pet['id']}", json={field: None}, headers=auth)
        assert resp.status_code == 422, field
        assert resp.json()["detail"][0]["loc"] == ["body", field]
        assert "not null" in resp.json()["detail"][0]["msg"]
    assert (await client.get(f"/pets/{pet['id']}")).json() == pet


async def test_delete_removes_the_pet(
    client: httpx.AsyncClient, auth: dict[str, str], new_pet
) -> None:
    pet = await new_pet()
    other = await new_pet("Keep me")

    resp = await client.delete(f"/pets/{pet['id']}", headers=auth)

    assert resp.status_code == 204
    assert resp.content == b""
    assert (await client.get(f"/pets/{pet['id']}")).status_code == 404
    assert [p["id"] for p in (await client.get("/pets")).json()["items"]] == [other["id"]]
    again = await client.delete(f"/pets/{pet['id']}", headers=auth)
    assert again.status_code == 404


async def test_unknown_id_is_404_on_every_endpoint(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    missing = uuid.uuid4()
    calls = [
        client.get(f"/pets/{missing}"),
        client.put(f"/pets/{missing}", json={"name": "A", "pet_type": "cat"}, headers=auth),
        client.patch(f"/pets/{missing}", json={"name": "A"}, headers=auth),
        client.patch(f"/pets/{missing}", json={}, headers=auth),
        client.delete(f"/pets/{missing}", headers=auth),
    ]
    for call in calls:
        resp = await call
        assert resp.status_code == 404, resp.request.method
        assert resp.json() == {"detail": f"Pet {missing} not found"}


async def test_a_non_uuid_id_is_422_on_every_endpoint(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    calls = [
        client.get("/pets/not-a-uuid"),
        client.put("/pets/not-a-uuid", json={"name": "A", "pet_type": "cat"}, headers=auth),
        client.patch("/pets/not-a-uuid", json={"name": "A"}, headers=auth),
        client.delete("/pets/not-a-uuid", headers=auth),
    ]
    for call in calls:
        resp = await call
        assert resp.status_code == 422, resp.request.method
        assert resp.json()["detail"][0]["loc"] == ["path", "pet_id"]
