"""Health probes, behaviour with the database down, start-up work, and the OpenAPI document."""

from __future__ import annotations

import httpx
from pydantic import SecretStr
from sqlmodel import select

from core.db import Database
from core.models import User
from core.passwords import verify_password

UNREACHABLE_DB = "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"
DB_DOWN = "Database is unavailable; try again shortly"


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    alive = await client.get("/healthz")
    ready = await client.get("/readyz")

    assert (alive.status_code, alive.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ok"})
    assert alive.headers["x-request-id"]


async def test_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    resp = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})

    assert resp.headers["x-request-id"] == "abc-123"


async def test_database_down_means_not_ready_and_503_not_500(app_client) -> None:
    # Start-up survives the outage too: the first user is attempted and skipped.
    async with app_client(
        database_url=UNREACHABLE_DB,
        first_user_username="admin",
        first_user_password=SecretStr("change-me-please"),
    ) as client:
        alive = await client.get("/healthz")
        ready = await client.get("/readyz")
        listing = await client.get("/pets")
        one = await client.get("/pets/6f1c2a9e-3b7d-4c1e-9a58-0d2f4b6e8a10")
        token = await client.post("/auth/token", data={"username": "a", "password": "b"})

    assert alive.status_code == 200
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "detail": DB_DOWN}
    for resp in (listing, one, token):
        assert resp.status_code == 503, resp.request.url
        assert resp.json() == {"detail": DB_DOWN}
        assert resp.headers["retry-after"] == "5"


async def test_first_user_is_created_at_start_up_once(app_client, db: Database) -> None:
    creds = {
        "first_user_username": "admin",
        "first_user_password": SecretStr("change-me-please"),
    }
    async with app_client(**creds) as client:
        token = await client.post(
            "/auth/token", data={"username": "admin", "password": "change-me-please"}
        )
    async with app_client(**creds):  # a restart must not fail on the existing user
        pass

    assert token.status_code == 200
    async with db.session() as session:
        users = (await session.exec(select(User))).all()
    assert [u.username for u in users] == ["admin"]
    assert await verify_password(users[0].hashed_password, "change-me-please")


async def test_no_first_user_without_both_settings(app_client, db: Database) -> None:
    async with app_client(first_user_username="admin"):
        pass

    async with db.session() as session:
        assert (await session.exec(select(User))).all() == []


async def test_openapi_documents_pets_auth_and_errors(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    spec = (await client.get("/openapi.json")).json()

    assert docs.status_code == 200
    assert spec["info"]["title"] == "Pet API"
    paths = spec["paths"]
    assert set(paths) >= {"/pets", "/pets/{pet_id}", "/auth/token", "/healthz", "/readyz"}
    for method in ("post", "get"):
        assert {"401", "403", "422", "503"} <= set(paths["/pets"][method]["responses"])
    for method in ("get", "put", "patch", "delete"):
        assert {"401", "403", "404", "422", "503"} <= set(
            paths["/pets/{pet_id}"][method]["responses"]
        )
    assert paths["/pets"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert "security" in paths["/pets"]["post"]
    examples = spec["components"]["schemas"]["PetCreate"]["examples"]
    assert examples == [{"name": "Rex", "pet_type": "dog"}]
