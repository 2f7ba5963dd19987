"""Password guessing on POST /auth/token is throttled per username and per client address,
across every replica (the counts live in PostgreSQL)."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from core.db import Database

WINDOW = 900


async def login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/auth/token", data={"username": username, "password": password})


async def test_a_username_is_locked_after_too_many_failures(app_client, account) -> None:
    async with app_client(auth_max_failures_per_username=3) as client:
        for _ in range(3):
            assert (await login(client, account.username, "wrong guess")).status_code == 401

        locked = await login(client, account.username, account.password)  # even the right one

        assert locked.status_code == 429
        assert 1 <= int(locked.headers["retry-after"]) <= WINDOW
        assert "Too many failed logins" in locked.json()["detail"]
        # Another account from the same address is not affected.
        assert (await login(client, "somebody-else", "wrong guess")).status_code == 401


async def test_unknown_usernames_count_too(app_client) -> None:
    async with app_client(auth_max_failures_per_username=2) as client:
        for _ in range(2):
            assert (await login(client, "no-such-user", "guess")).status_code == 401

        assert (await login(client, "no-such-user", "guess")).status_code == 429


async def test_an_address_is_locked_after_too_many_failures_on_any_usernames(
    app_client, account
) -> None:
    async with app_client(auth_max_failures_per_address=4) as client:
        for n in range(4):
            assert (await login(client, f"user-{n}", "guess")).status_code == 401

        blocked = await login(client, account.username, account.password)

        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) >= 1


async def test_a_successful_login_clears_the_username_count(app_client, account) -> None:
    async with app_client(auth_max_failures_per_username=3) as client:
        for _ in range(2):
            assert (await login(client, account.username, "wrong")).status_code == 401
        assert (await login(client, account.username, account.password)).status_code == 200
        for _ in range(2):
            assert (await login(client, account.username, "wrong")).status_code == 401

        assert (await login(client, account.username, account.password)).status_code == 200


async def test_the_lock_ends_with_its_window(app_client, account, db: Database) -> None:
    async with app_client(auth_max_failures_per_username=1) as client:
        assert (await login(client, account.username, "wrong")).status_code == 401
        assert (await login(client, account.username, account.password)).status_code == 429
        async with db.engine.begin() as conn:  # the window's time passes
            await conn.execute(
                text("UPDATE login_failures SET window_started_at = now() - interval '901 s'")
            )

        assert (await login(client, account.username, account.password)).status_code == 200


async def test_the_counts_hold_across_replicas(app_client, account) -> None:
    async with (
        app_client(auth_max_failures_per_username=3) as first,
        app_client(auth_max_failures_per_username=3) as second,
    ):
        assert (await login(first, account.username, "wrong")).status_code == 401
        assert (await login(second, account.username, "wrong")).status_code == 401
        assert (await login(first, account.username, "wrong")).status_code == 401

        assert (await login(second, account.username, account.password)).status_code == 429


async def test_a_limit_of_zero_turns_it_off(app_client, account) -> None:
    async with app_client(
        auth_max_failures_per_username=0, auth_max_failures_per_address=0
    ) as client:
        for _ in range(8):
            assert (await login(client, account.username, "wrong")).status_code == 401

        assert (await login(client, account.username, account.password)).status_code == 200
