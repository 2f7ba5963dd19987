"""`python -m pet_api` as a real process: first user, token, create and read over HTTP."""

from __future__ import annotations

import json

import httpx
import pytest

from core.db import Database
from testkit.processes import free_port, run_process


@pytest.mark.e2e
def test_python_m_pet_api_serves_a_token_create_get_round_trip(
    database_url: str, db: Database
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "DATABASE_URL": database_url,
        "PET_API_PORT": str(port),
        "PET_API_HOST": "127.0.0.1",
        "JWT_SECRET": "pet-api-process-test-secret-0123456789abcdef",
        "FIRST_USER_USERNAME": "admin",
        "FIRST_USER_PASSWORD": "change-me-please",
        "PET_API_READS_REQUIRE_AUTH": "false",
    }

    with run_process(["-m", "pet_api"], env, health_url=f"{base}/readyz") as proc:
        with httpx.Client(base_url=base, timeout=10) as http:
            token = http.post(
                "/auth/token", data={"username": "admin", "password": "change-me-please"}
            )
            assert token.status_code == 200, token.text
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            created = http.post("/pets", json={"name": "Rex", "pet_type": "dog"}, headers=headers)
            assert created.status_code == 201, created.text
            fetched = http.get(created.headers["location"])
            assert fetched.status_code == 200
            assert fetched.json() == created.json()
            missing = http.get("/pets/6f1c2a9e-3b7d-4c1e-9a58-0d2f4b6e8a10")
            assert missing.status_code == 404
        exit_code = proc.stop()

    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status reports it.
    assert exit_code in (0, -15), proc.stderr()
    logs = [json.loads(line) for line in proc.stderr().splitlines()]  # every line is JSON
    assert logs, proc.stderr()
    assert all(entry["service"] == "pet_api" for entry in logs)
    messages = [entry["msg"] for entry in logs]
    assert "first user created" in messages
    assert "Application shutdown complete." in messages
    # One access line per request, tagged with the request id the client saw.
    access = [e for e in logs if e["logger"] == "access" and e["path"] != "/readyz"]
    assert [e["msg"] for e in access] == [
        "POST /auth/token 200",
        "POST /pets 201",
        f"GET /pets/{created.json()['id']} 200",
        "GET /pets/6f1c2a9e-3b7d-4c1e-9a58-0d2f4b6e8a10 404",
    ]
    post = access[1]
    assert post["request_id"] == created.headers["x-request-id"]
    assert (post["method"], post["path"], post["status"]) == ("POST", "/pets", 201)
    assert post["duration_ms"] > 0
    # Never a password or a token in the logs.
    assert "change-me-please" not in proc.stderr()
    assert token.json()["access_token"] not in proc.stderr()
