"""Cross-service fixtures: the Replicate mock, gateway and generation worker as real processes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from testkit.processes import ServiceProcess, free_port, run_process

MOCK_TOKEN = "e2e-mock-token"
JWT_SECRET = "e2e-tests-secret-0123456789abcdef0123"


@pytest.fixture(scope="session")
def mock_url() -> Iterator[str]:
    port = free_port()
    env = {
        "REPLICATE_MOCK_PORT": str(port),
        "REPLICATE_MOCK_API_TOKENS": MOCK_TOKEN,
        "REPLICATE_MOCK_LATENCY_SECONDS": "0.5",
    }
    url = f"http://127.0.0.1:{port}"
    with run_process(["-m", "replicate_mock"], env, health_url=f"{url}/healthz"):
        yield url


def mock_call(mock_url: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    response = httpx.request(
        method, f"{mock_url}{path}", headers={"Authorization": f"Bearer {MOCK_TOKEN}"}, **kwargs
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def service_env(
    database_url: str, broker_url: str, mock_url: str, tmp_path: Path
) -> dict[str, str]:
    """Settings every e2e process shares; tests add or override per process."""
    mock_call(mock_url, "POST", "/_mock/faults", json={"clear_next": True, "latency_seconds": 0.5})
    return {
        "DATABASE_URL": database_url,
        "BROKER_URL": broker_url,
        "JWT_SECRET": JWT_SECRET,
        "STORAGE_BACKEND": "local",
        "STORAGE_LOCAL_ROOT": str(tmp_path / "media"),
        "REPLICATE_BASE_URL": mock_url,
        "REPLICATE_API_TOKEN": MOCK_TOKEN,
        "GATEWAY_SWEEP_INTERVAL_SECONDS": "0.5",
        "GATEWAY_UNPUBLISHED_GRACE_SECONDS": "0.5",
        "GENERATION_THREADS": "4",
        "GENERATION_POLL_INTERVAL_SECONDS": "0.2",
        "GENERATION_POLL_MAX_INTERVAL_SECONDS": "0.5",
        "RETRY_MIN_BACKOFF_MS": "100",
        "RETRY_MAX_BACKOFF_MS": "1000",
        # off: several processes would want the default ports
        "REPORT_METRICS_PORT": "0",
        "GENERATION_METRICS_PORT": "0",
    }


Starter = Callable[..., AbstractContextManager[ServiceProcess]]


@pytest.fixture
def start_gateway(service_env: dict[str, str]) -> Starter:
    @contextmanager
    def start(**overrides: str) -> Iterator[ServiceProcess]:
        port = free_port()
        env = {**service_env, "GATEWAY_PORT": str(port), **overrides}
        url = f"http://127.0.0.1:{port}"
        with run_process(["-m", "gateway"], env, health_url=f"{url}/healthz") as proc:
            proc.base_url = url
            yield proc

    return start


@pytest.fixture
def start_worker(service_env: dict[str, str]) -> Starter:
    @contextmanager
    def start(**overrides: str) -> Iterator[ServiceProcess]:
        with run_process(["-m", "generation_worker"], {**service_env, **overrides}) as proc:
            yield proc

    return start


def wait_for_status(
    http: httpx.Client, job_id: str, want: set[str], timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = http.get(f"/status/{job_id}").raise_for_status().json()
        if body["status"] in want:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {body['status']} after {timeout}s: {body}")
        time.sleep(0.2)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.1)
