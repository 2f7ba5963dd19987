"""Metrics after real traffic through real processes: the worker's on its own port, the
gateway's on GET /metrics; values move as the jobs did, labels stay bounded."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.db import Database
from testkit.processes import free_port

from .conftest import Starter, mock_call, wait_for_status, wait_until  # type: ignore[import-not-found]
from .test_e2e_generation import login  # type: ignore[import-not-found]

pytestmark = pytest.mark.e2e


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


async def test_the_worker_and_the_gateway_count_what_happened(
    db: Database, mock_url: str, own_broker_url: str, start_gateway: Starter, start_worker: Starter
) -> None:
    port = free_port()
    broker = {"BROKER_URL": own_broker_url}
    with (
        start_gateway(**broker) as gateway,
        start_worker(**broker, GENERATION_METRICS_PORT=str(port)),
    ):
        http = await login(db, gateway.base_url)
        good = http.post("/generate", json={"prompt": "counted"}).json()["job_id"]
        assert wait_for_status(http, good, {"succeeded", "failed"})["status"] == "succeeded"
        mock_call(mock_url, "POST", "/_mock/faults", json={"next": {"create": ["fail"]}})
        bad = http.post("/generate", json={"prompt": "refused"}).json()["job_id"]
        assert wait_for_status(http, bad, {"succeeded", "failed"})["status"] == "failed"

        worker = samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
        scraped_gateway = httpx.get(f"{gateway.base_url}/metrics", timeout=5)
        # The gauges come from the database every 15 s: both jobs are finished by now.
        wait_until(
            lambda: (
                value(
                    samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text),
                    "generation_jobs",
                    status="running",
                )
                == 0
            ),
            "the running gauge",
        )

    finished = "generation_jobs_finished_total"
    assert value(worker, finished, status="succeeded", reason="ok") == 1
    assert value(worker, finished, status="failed", reason="prediction_failed") == 1
    assert value(worker, "generation_queue_wait_seconds_count") == 2
    assert value(worker, "generation_run_seconds_count", status="succeeded") == 1
    assert value(worker, "generation_run_seconds_count", status="failed") == 1
    created = "replicate_request_duration_seconds_count"
    assert value(worker, created, endpoint="create", status="201") == 2
    assert (
        value(worker, "replicate_request_duration_seconds_count", endpoint="download", status="200")
        >= 1
    )
    assert value(worker, "storage_put_bytes_total", backend="local") > 0
    for job_id in (good, bad):  # never a label value
        assert job_id not in scraped_gateway.text

    gateway_samples = samples(scraped_gateway.text)
    posts = value(
        gateway_samples,
        "http_request_duration_seconds_count",
        method="POST",
        route="/generate",
        status="202",
    )
    assert posts == 2
    assert (
        value(
            gateway_samples,
            "http_request_duration_seconds_count",
            method="GET",
            route="/status/{job_id}",
            status="200",
        )
        >= 2
    )
    assert value(gateway_samples, "outbox_publish_lag_seconds_count") == 2
