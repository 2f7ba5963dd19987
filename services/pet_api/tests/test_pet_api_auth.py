"""Writes need a valid token of an active user; reads are public unless configured otherwise."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from sqlmodel import delete, select

from core.db import Database
from core.models import User

TEST_SECRET = "pet-api-test-secret-0123456789abcdef-0123456789"
BODY = {"name": "Rex", "pet_type": "dog"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def write_calls(client: httpx.AsyncClient, headers: dict[str, str]) -> list[object]:
    some_id = uuid.uuid4()
    return [
        client.post("/pets", json=BODY, headers=headers),
        client.put(f"/pets/{some_id}", json=BODY, headers=headers),
        client.patch(f"/pets/{some_id}", json={"name": "A"}, headers=headers),
        client.delete(f"/pets/{some_id}", headers=headers),
    ]


async def _user(db: Database, username: str) -> User:
    async with db.session() as session:
        return (await session.exec(select(User).where(User.username == username))).one()


async def test_token_round_trip(client: httpx.AsyncClient, account) -> None:
    resp = await client.post(
        "/auth/token", data={"username": account.username, "password": account.password}
    )

    assert resp.status_code == 200
    body = resp.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    created = await client.post("/pets", json=BODY, headers=bearer(body["access_token"]))
    assert created.status_code == 201


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("alice", "wrong password"),
        ("nobody", "correct horse battery"),
        ("al\x00ice", "correct horse battery"),  # NUL: not storable, so not a 500 either
    ],
)
async def test_wrong_credentials_are_401_with_www_authenticate(
    client: httpx.AsyncClient, account, username: str, password: str
) -> None:
    resp = await client.post("/auth/token", data={"username": username, "password": password})

    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"
    assert resp.json() == {"detail": "Incorrect username or password"}


async def test_token_request_without_form_fields_is_422(client: httpx.AsyncClient) -> None:
    resp = await client.post("/auth/token", data={"username": "alice"})

    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", "password"]


async def test_writes_without_a_token_are_401(client: httpx.AsyncClient) -> None:
    for call in write_calls(client, {}):
        resp = await call  # type: ignore[misc]
        assert resp.status_code == 401, resp.request.method
        assert resp.headers["www-authenticate"] == "Bearer"
        assert "Not authenticated" in resp.json()["detail"]
    assert (await client.get("/pets")).json()["items"] == []


@pytest.mark.parametrize(
    "headers",
    [
        bearer("not-a-jwt"),
        bearer(jwt.encode({"sub": str(uuid.uuid4()), "exp": 4102444800}, "another-secret-" * 3)),
        bearer(jwt.encode({"sub": "not-a-uuid", "exp": 4102444800}, TEST_SECRET)),
        bearer(jwt.encode({"sub": str(uuid.uuid4())}, TEST_SECRET)),  # no expiry
        {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
    ],
    ids=["garbage", "wrong-signature", "bad-subject", "no-exp", "basic-scheme"],
)
async def test_malformed_tokens_are_401(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    for call in write_calls(client, headers):
        resp = await call  # type: ignore[misc]
        assert resp.status_code == 401, resp.request.method
        assert resp.headers["www-authenticate"] == "Bearer"
        assert resp.json()["detail"] in {
            "Invalid bearer token",
            "Not authenticated: send 'Authorization: Bearer <token>'",
        }


async def test_an_expired_token_is_401_saying_so(
    client: httpx.AsyncClient, account, db: Database
) -> None:
    user = await _user(db, account.username)
    past = datetime.now(UTC) - timedelta(minutes=5)
    token = jwt.encode({"sub": str(user.id), "iat": past, "exp": past}, TEST_SECRET)

    resp = await client.post("/pets", json=BODY, headers=bearer(token))

    assert resp.status_code == 401
    assert "expired" in resp.json()["detail"]


async def test_a_token_of_a_deleted_user_is_401(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    async with db.session() as session:
        await session.exec(delete(User))
        await session.commit()

    resp = await client.post("/pets", json=BODY, headers=auth)

    assert resp.status_code == 401
    assert resp.json() == {"detail": "Token refers to an unknown user"}


async def test_a_disabled_user_is_403_for_writes_and_tokens(
    client: httpx.AsyncClient, auth: dict[str, str], account, db: Database
) -> None:
    async with db.session() as session:
        user = (await session.exec(select(User))).one()
        user.is_active = False
        session.add(user)
        await session.commit()

    for call in write_calls(client, auth):
        resp = await call  # type: ignore[misc]
        assert resp.status_code == 403, resp.request.method
        assert resp.json() == {"detail": "User is disabled"}
    token = await client.post(
        "/auth/token", data={"username": account.username, "password": account.password}
    )
    assert token.status_code == 403


async def test_reads_are_public_by_default(client: httpx.AsyncClient, new_pet) -> None:
    pet = await new_pet()

    assert (await client.get("/pets")).status_code == 200
    assert (await client.get(f"/pets/{pet['id']}")).json() == pet


async def test_a_bad_token_is_refused_even_on_public_reads(client: httpx.AsyncClient) -> None:
    resp = await client.get("/pets", headers=bearer("not-a-jwt"))

    assert resp.status_code == 401


async def test_reads_need_a_token_when_configured(app_client, account) -> None:
    async with app_client(pet_api_reads_require_auth=True) as client:
        token = (
            await client.post(
                "/auth/token", data={"username": account.username, "password": account.password}
            )
        ).json()["access_token"]
        created = await client.post("/pets", json=BODY, headers=bearer(token))
        url = f"/pets/{created.json()['id']}"

        for path in ("/pets", url):
            anonymous = await client.get(path)
            assert anonymous.status_code == 401, path
            assert anonymous.headers["www-authenticate"] == "Bearer"
            assert (await client.get(path, headers=bearer(token))).status_code == 200
        assert (await client.get("/healthz")).status_code == 200
