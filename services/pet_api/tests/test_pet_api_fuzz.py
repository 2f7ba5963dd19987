"""Schemathesis against the real `python -m pet_api` process: no input reaches a 500, and every
answer is one the OpenAPI document promises."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.db import Database
from pet_api.app import create_app
from pet_api.settings import PetApiSettings
from testkit.fuzz import (
    FuzzTarget,
    call_and_validate,
    fuzz_settings,
    schema_of,
    serve_for_fuzzing,
)
from testkit.plugin import truncate_all
from testkit.processes import free_port

SECRET = "pet-api-fuzz-secret-0123456789abcdef"
USER, PASSWORD = "fuzzer", "fuzzer-password-123"

schema = schema_of(create_app(PetApiSettings(jwt_secret=SECRET)).openapi())


@pytest.fixture(scope="module")
async def pet_api(database_url: str, session_db: Database) -> AsyncIterator[FuzzTarget]:
    await truncate_all(session_db)  # no login failures left by other tests' fuzzing
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "DATABASE_URL": database_url,
        "PET_API_HOST": "127.0.0.1",
        "PET_API_PORT": str(port),
        "JWT_SECRET": SECRET,
        "FIRST_USER_USERNAME": USER,
        "FIRST_USER_PASSWORD": PASSWORD,
        "LOG_LEVEL": "WARNING",
    }
    async with serve_for_fuzzing("pet_api", env, base, USER, PASSWORD) as target:
        yield target


@pytest.mark.e2e
@schema.parametrize()
@fuzz_settings
def test_pet_api_answers_every_request_as_documented(case: Any, pet_api: FuzzTarget) -> None:
    call_and_validate(case, pet_api)
