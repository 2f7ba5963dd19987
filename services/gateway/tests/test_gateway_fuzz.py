"""Schemathesis against the real `python -m gateway` process (real PostgreSQL and RabbitMQ): no
input reaches a 500, and every answer is one the OpenAPI document promises."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.db import Database
from core.users import ensure_user
from gateway.app import create_app
from gateway.settings import GatewaySettings
from testkit.fuzz import (
    FuzzTarget,
    call_and_validate,
    fuzz_settings,
    schema_of,
    serve_for_fuzzing,
)
from testkit.plugin import truncate_all
from testkit.processes import free_port

SECRET = "gateway-fuzz-secret-0123456789abcdef"
USER, PASSWORD = "fuzzer", "fuzzer-password-123"

schema = schema_of(create_app(GatewaySettings(jwt_secret=SECRET)).openapi())


@pytest.fixture(scope="module")
async def gateway(
    database_url: str,
    broker_url: str,
    session_db: Database,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[FuzzTarget]:
    await truncate_all(session_db)  # no login failures left by other tests' fuzzing
    async with session_db.session() as session:
        await ensure_user(session=session, username=USER, password=PASSWORD)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "DATABASE_URL": database_url,
        "BROKER_URL": broker_url,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "JWT_SECRET": SECRET,
        "STORAGE_BACKEND": "local",
        "STORAGE_LOCAL_ROOT": str(tmp_path_factory.mktemp("media")),
        "LOG_LEVEL": "WARNING",
    }
    async with serve_for_fuzzing("gateway", env, base, USER, PASSWORD) as target:
        yield target


@pytest.mark.e2e
@schema.parametrize()
@fuzz_settings
def test_gateway_answers_every_request_as_documented(case: Any, gateway: FuzzTarget) -> None:
    call_and_validate(case, gateway)
