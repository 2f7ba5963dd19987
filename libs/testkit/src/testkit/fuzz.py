"""Property-based API fuzzing with Schemathesis, the same way for every API.

The schema is the app's own OpenAPI document (built in-process, so tests are collected per
operation without a server); every generated request goes over HTTP to the real service
process. Each operation gets `EXAMPLES` valid and invalid requests from a fixed seed, and
every response must be: not a 5xx, a status the operation documents, of the documented
content type, headers and body schema; valid input accepted and invalid input rejected.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import schemathesis
from hypothesis import HealthCheck, seed, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from testkit.processes import run_process

F = TypeVar("F", bound=Callable[..., Any])

# Bounded so that both APIs' fuzzing stays within a couple of minutes; FUZZ_EXAMPLES raises it
# for a longer hunt.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
SEED = 20261201


def fuzz_settings(test: F) -> F:
    """Fixed seed, bounded examples, no per-example deadline (real HTTP round trips)."""
    configured = settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,  # no replay of earlier runs' failures: every run is the same run
        print_blob=True,
    )(test)
    return seed(SEED)(configured)


def schema_of(openapi: dict[str, Any]) -> Any:
    return schemathesis.openapi.from_dict(openapi)


@dataclass(frozen=True)
class FuzzTarget:
    """A running service and a bearer token taken before fuzzing starts (the fuzzer's own
    failed logins soon lock its address out of POST /auth/token, as they should)."""

    base_url: str
    token: str


@asynccontextmanager
async def serve_for_fuzzing(
    service: str, env: Mapping[str, str], base_url: str, username: str, password: str
) -> AsyncIterator[FuzzTarget]:
    """`python -m <service>` with a token for `username`; afterwards its log must hold no
    ERROR line (an unhandled error is logged as one even when the client saw a 4xx)."""
    with run_process(["-m", service], env, health_url=f"{base_url}/readyz") as proc:
        async with httpx.AsyncClient(base_url=base_url) as http:
            token = await http.post(
                "/auth/token", data={"username": username, "password": password}
            )
        yield FuzzTarget(base_url, token.raise_for_status().json()["access_token"])
    assert '"level": "ERROR"' not in proc.stderr(), proc.stderr()


def call_and_validate(case: Any, target: FuzzTarget) -> None:
    # A cursor is opaque: any string fits its schema, yet only one the API handed out is
    # valid, so "valid input must be accepted" cannot hold for it. Nor for a webhook URL,
    # whose host must resolve to public addresses: no schema can say which those are.
    opaque = bool(case.query) and "cursor" in case.query
    webhook = isinstance(case.body, dict) and case.body.get("webhook") is not None
    case.call_and_validate(
        base_url=target.base_url,
        headers={"Authorization": f"Bearer {target.token}"},
        excluded_checks=[positive_data_acceptance] if opaque or webhook else [],
    )
