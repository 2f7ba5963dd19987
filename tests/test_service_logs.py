"""What the services write to their logs: JSON lines only, one access line per request, never
a token or a password, and a clear refusal of settings that are unsafe."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from core.db import Database
from core.users import ensure_user
from testkit.processes import run_process

from .conftest import Starter  # type: ignore[import-not-found]

pytestmark = pytest.mark.e2e

PASSWORD = "password-123"


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line must parse: a raw warning or traceback line fails here."""
    return [json.loads(line) for line in text.splitlines()]


async def test_gateway_logs_each_request_as_one_json_line(
    db: Database, start_gateway: Starter
) -> None:
    async with db.session() as session:
        await ensure_user(session=session, username="eve", password=PASSWORD)
    # No JWT_SECRET: the development placeholder, which must be a JSON warning, not a raw one.
    with start_gateway(JWT_SECRET="") as gateway:
        with httpx.Client(base_url=gateway.base_url, timeout=10) as http:
            token = http.post("/auth/token", data={"username": "eve", "password": PASSWORD})
            auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
            accepted = http.post("/generate", json={"prompt": "a fox"}, headers=auth)
            assert accepted.status_code == 202
            http.get("/jobs?limit=1&cursor=secret-looking-query", headers=auth)
        gateway.stop()

    logs = json_lines(gateway.stderr())
    assert any("JWT_SECRET is the development placeholder" in e["msg"] for e in logs)
    access = [e for e in logs if e["logger"] == "access" and e["path"] != "/healthz"]
    assert [(e["method"], e["path"], e["status"]) for e in access] == [
        ("POST", "/auth/token", 200),
        ("POST", "/generate", 202),
        ("GET", "/jobs", 422),
    ]
    assert access[1]["request_id"] == accepted.headers["x-request-id"]
    assert all(e["duration_ms"] >= 0 for e in access)
    assert PASSWORD not in gateway.stderr()
    assert token.json()["access_token"] not in gateway.stderr()
    assert "secret-looking-query" not in gateway.stderr()  # no query strings


@pytest.mark.parametrize(
    ("service", "env"),
    [
        ("gateway", {"ENVIRONMENT": "production", "JWT_SECRET": "too-short"}),
        ("pet_api", {"ENVIRONMENT": "test", "JWT_SECRET": "x" * 31}),
        ("pet_api", {"ENVIRONMENT": "production", "JWT_SECRET": ""}),
    ],
)
def test_a_weak_jwt_secret_outside_dev_stops_start_up_with_a_clear_json_line(
    service: str, env: dict[str, str], database_url: str
) -> None:
    with run_process(["-m", service], {"DATABASE_URL": database_url, **env}) as proc:
        exit_code = proc.popen.wait(30)

    assert exit_code == 2
    (line,) = json_lines(proc.stderr())
    assert line["level"] == "CRITICAL"
    assert line["service"] == service
    assert "JWT_SECRET must be" in line["msg"]


def test_an_invalid_setting_is_named_in_one_json_line(database_url: str) -> None:
    env = {"DATABASE_URL": database_url, "GATEWAY_PORT": "not-a-port", "LOG_LEVEL": "INFO"}
    with run_process(["-m", "gateway"], env) as proc:
        exit_code = proc.popen.wait(30)

    assert exit_code == 2
    (line,) = json_lines(proc.stderr())
    assert "GATEWAY_PORT" in line["msg"]
