"""Every service stops cleanly on SIGTERM and on SIGINT: within a few seconds, with exit
status 0 (or the signal's own, as uvicorn re-raises it), and not one ERROR line; work in
flight is finished or left to RabbitMQ for redelivery, never lost."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from core.db import Database
from testkit.processes import ServiceProcess, free_port, run_process

from .conftest import Starter, mock_call, wait_for_status  # type: ignore[import-not-found]
from .test_e2e_generation import login  # type: ignore[import-not-found]

pytestmark = pytest.mark.e2e

STOP_WITHIN_SECONDS = 10


def stop_and_check(process: ServiceProcess, sig: signal.Signals) -> None:
    started = time.monotonic()
    process.signal(sig)
    code = process.popen.wait(30)
    took = time.monotonic() - started
    errors = [line for line in process.stderr().splitlines() if '"level": "ERROR"' in line]
    assert errors == [], "\n".join(errors)
    assert "Traceback" not in process.stderr(), process.stderr()
    assert code in (0, -sig, 128 + sig), (code, process.stderr()[-2000:])
    assert took < STOP_WITHIN_SECONDS, f"took {took:.1f} s"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_the_generation_worker_stops_cleanly_with_work_in_flight(
    sig: signal.Signals,
    db: Database,
    mock_url: str,
    start_gateway: Starter,
    start_worker: Starter,
) -> None:
    mock_call(mock_url, "POST", "/_mock/faults", json={"latency_seconds": 3})
    with start_gateway() as gateway:
        http = await login(db, gateway.base_url)
        ids = [http.post("/generate", json={"prompt": f"p{n}"}).json()["job_id"] for n in range(6)]
        with start_worker() as worker:
            wait_for_status(http, ids[0], {"running"}, timeout=30)
            stop_and_check(worker, sig)
        with start_worker():  # nothing was lost: the next worker finishes every job
            for job_id in ids:
                assert wait_for_status(http, job_id, {"succeeded", "failed"})["status"] == (
                    "succeeded"
                )
        stop_and_check(gateway, sig)


@contextmanager
def started(module: str, env: dict[str, str], health_url: str | None) -> Iterator[ServiceProcess]:
    with run_process(["-m", module], env, health_url=health_url) as process:
        yield process


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("service", ["pet_api", "report_worker", "replicate_mock"])
def test_the_other_services_stop_cleanly(
    service: str, sig: signal.Signals, service_env: dict[str, str]
) -> None:
    port = free_port()
    env = {
        **service_env,
        "PET_API_PORT": str(port),
        "REPLICATE_MOCK_PORT": str(port),
        "REPORT_INTERVAL_SECONDS": "1",
    }
    health = None if service == "report_worker" else f"http://127.0.0.1:{port}/healthz"
    with started(service, env, health) as process:
        if service == "report_worker":  # mid-schedule, after at least one report
            deadline = time.monotonic() + 30
            while "report" not in process.stdout().lower():
                assert time.monotonic() < deadline, process.stderr()
                time.sleep(0.1)
        else:
            assert httpx.get(health or "", timeout=5).status_code == 200
        stop_and_check(process, sig)
    for line in process.stderr().splitlines():
        json.loads(line)  # JSON lines only, the shutdown's too
