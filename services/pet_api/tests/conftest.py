"""Fixtures: the real app (lifespan included) on the test database, users and tokens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from core.db import Database
from core.models import User
from core.passwords import hash_password
from pet_api.app import create_app
from pet_api.settings import PetApiSettings
from testkit.processes import free_port

TEST_SECRET = "pet-api-test-secret-0123456789abcdef-0123456789"
PASSWORD = "correct horse battery"


def make_settings(database_url: str, **overrides: Any) -> PetApiSettings:
    """Settings from arguments only: neither a developer's .env nor FIRST_USER_* leak in."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "jwt_secret": SecretStr(TEST_SECRET),
        "environment": "test",
        "first_user_username": None,
        "first_user_password": None,
        "db_connect_timeout_seconds": 2.0,
        **overrides,
    }
    return PetApiSettings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def serve(settings: PetApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, behind an in-process HTTP client."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@asynccontextmanager
async def serve_http(settings: PetApiSettings) -> AsyncIterator[str]:
    """The app served by uvicorn on a free local port, in this event loop, for a client that
    needs real TCP (a browser); yields the base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:  # uvicorn offers no event to await
            if task.done():
                task.result()  # startup failed: raise its error
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


ClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def settings(database_url: str) -> PetApiSettings:
    return make_settings(database_url)


@pytest.fixture
def app_client(database_url: str, db: Database) -> ClientFactory:
    """Start the app with settings overrides: `async with app_client(x=...) as client:`."""

    def factory(**overrides: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        return serve(make_settings(**{"database_url": database_url, **overrides}))

    return factory


@pytest.fixture
async def client(app_client: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client() as c:
        yield c


@dataclass(frozen=True)
class Account:
    username: str
    password: str


@pytest.fixture(scope="session")
async def password_hash() -> str:
    return await hash_password(PASSWORD)  # once: Argon2 is deliberately slow


@pytest.fixture
async def account(db: Database, password_hash: str) -> Account:
    async with db.session() as session:
        session.add(User(username="alice", hashed_password=password_hash))
        await session.commit()
    return Account("alice", PASSWORD)


TokenFor = Callable[[str, str], Awaitable[str]]
NewPet = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def token_for(client: httpx.AsyncClient) -> TokenFor:
    """`await token_for(username, password)`: a bearer token from POST /auth/token."""

    async def get(username: str, password: str) -> str:
        resp = await client.post("/auth/token", data={"username": username, "password": password})
        assert resp.status_code == 200, resp.text
        token: str = resp.json()["access_token"]
        return token

    return get


@pytest.fixture
async def auth(token_for: TokenFor, account: Account) -> dict[str, str]:
    """Authorization headers of a valid, active user."""
    return {"Authorization": f"Bearer {await token_for(account.username, account.password)}"}


@pytest.fixture
def new_pet(client: httpx.AsyncClient, auth: dict[str, str]) -> NewPet:
    """`await new_pet(name, pet_type)`: create a pet through the API and return its JSON."""

    async def create(name: str = "Rex", pet_type: str = "dog") -> dict[str, Any]:
        resp = await client.post("/pets", json={"name": name, "pet_type": pet_type}, headers=auth)
        assert resp.status_code == 201, resp.text
        body: dict[str, Any] = resp.json()
        return body

    return create
