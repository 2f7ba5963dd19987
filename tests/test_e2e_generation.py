"""The media flow through real processes: gateway, generation worker and the Replicate mock,
over real PostgreSQL and RabbitMQ, with local and S3 (moto) storage, and the two faults the
design promises to survive: a worker SIGKILLed mid-job and RabbitMQ unreachable at POST time."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from core.db import Database
from core.users import ensure_user
from testkit.proxy import ToggleProxy, toggle_proxy

from .conftest import (  # type: ignore[import-not-found]
    Starter,
    mock_call,
    wait_for_status,
    wait_until,
)

pytestmark = pytest.mark.e2e


async def login(db: Database, base_url: str, username: str = "eve") -> httpx.Client:
    async with db.session() as session:
        await ensure_user(session=session, username=username, password="password-123")
    http = httpx.Client(base_url=base_url, timeout=10)
    token = http.post("/auth/token", data={"username": username, "password": "password-123"})
    http.headers["Authorization"] = f"Bearer {token.raise_for_status().json()['access_token']}"
    return http


@contextmanager
def broker_behind_a_switch(broker_url: str) -> Iterator[tuple[ToggleProxy, str]]:
    """A proxy in front of RabbitMQ, and the broker URL that goes through it."""
    with toggle_proxy("127.0.0.1", 5672) as proxy:
        yield proxy, broker_url.replace("127.0.0.1:5672", f"127.0.0.1:{proxy.port}")


def check_media(http: httpx.Client, status: dict[str, Any], count: int, ext: str) -> None:
    assert [m["index"] for m in status["media"]] == list(range(count))
    for media in status["media"]:
        response = http.get(media["url"])
        assert response.status_code == 200
        assert response.headers["content-type"] == f"image/{ext}"
        assert hashlib.sha256(response.content).hexdigest() == media["sha256"]
        assert len(response.content) == media["size_bytes"]


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_generate_poll_and_download(
    backend: str,
    db: Database,
    start_gateway: Starter,
    start_worker: Starter,
    moto_s3: Any,
) -> None:
    storage = (
        {"STORAGE_BACKEND": "s3", **moto_s3.env(moto_s3.new_bucket())} if backend == "s3" else {}
    )
    with start_gateway(**storage) as gateway, start_worker(**storage):
        http = await login(db, gateway.base_url)
        accepted = http.post(
            "/generate",
            json={
                "prompt": "a lighthouse at dusk",
                "params": {"num_outputs": 2, "output_format": "png"},
            },
        )
        assert accepted.status_code == 202
        status = wait_for_status(http, accepted.json()["job_id"], {"succeeded", "failed"})
        assert status["status"] == "succeeded", status["last_error"]
        assert status["attempts"] == 1
        check_media(http, status, count=2, ext="png")


async def test_worker_killed_mid_job_still_completes_with_one_prediction(
    db: Database, mock_url: str, start_gateway: Starter, start_worker: Starter
) -> None:
    mock_call(mock_url, "POST", "/_mock/faults", json={"latency_seconds": 4})
    created_before = mock_call(mock_url, "GET", "/_mock/stats")["predictions_created"]
    with start_gateway() as gateway:
        http = await login(db, gateway.base_url)
        job_id = http.post("/generate", json={"prompt": "a storm at sea"}).json()["job_id"]
        with start_worker() as worker:
            wait_for_status(http, job_id, {"running"}, timeout=30)
            worker.kill_group()  # SIGKILL mid-prediction: nothing acked, nothing cleaned up
        assert http.get(f"/status/{job_id}").json()["status"] == "running"
        with start_worker():
            status = wait_for_status(http, job_id, {"succeeded", "failed"})
    assert status["status"] == "succeeded", status["last_error"]
    created_after = mock_call(mock_url, "GET", "/_mock/stats")["predictions_created"]
    assert created_after - created_before == 1


async def test_broker_down_at_post_time_the_job_still_completes(
    db: Database, broker_url: str, start_gateway: Starter, start_worker: Starter
) -> None:
    with (
        broker_behind_a_switch(broker_url) as (proxy, proxied_url),
        start_gateway(BROKER_URL=proxied_url) as gw,
    ):
        http = await login(db, gw.base_url)
        proxy.down()  # RabbitMQ unreachable for the gateway
        accepted = http.post("/generate", json={"prompt": "a quiet harbour"})
        assert accepted.status_code == 202
        job_id = accepted.json()["job_id"]
        with start_worker():  # the worker reaches RabbitMQ directly
            wait_until(lambda: "not published" in gw.stderr(), "the relay's first try")
            assert http.get(f"/status/{job_id}").json()["status"] == "queued"
            proxy.up()  # the broker is back: the relay's next round publishes the job
            status = wait_for_status(http, job_id, {"succeeded", "failed"})
    assert status["status"] == "succeeded", status["last_error"]


async def test_a_gateway_killed_before_it_published_loses_no_job(
    db: Database, broker_url: str, start_gateway: Starter, start_worker: Starter
) -> None:
    with (
        broker_behind_a_switch(broker_url) as (proxy, proxied_url),
        start_gateway(BROKER_URL=proxied_url) as doomed,
    ):
        http = await login(db, doomed.base_url)
        proxy.down()  # its relay cannot publish what it accepts
        accepted = http.post("/generate", json={"prompt": "an orphaned job"})
        assert accepted.status_code == 202
        doomed.kill_group()  # SIGKILL, before RabbitMQ ever saw the job
    job_id = accepted.json()["job_id"]
    # Any other gateway's sweep publishes it once the grace time has passed.
    with start_gateway() as survivor, start_worker():
        status = wait_for_status(
            await login(db, survivor.base_url), job_id, {"succeeded", "failed"}
        )
    assert status["status"] == "succeeded", status["last_error"]


async def test_permanent_failure_is_shown_by_status(
    db: Database, mock_url: str, start_gateway: Starter, start_worker: Starter
) -> None:
    mock_call(mock_url, "POST", "/_mock/faults", json={"next": {"create": ["fail"]}})
    with start_gateway() as gateway, start_worker():
        http = await login(db, gateway.base_url)
        job_id = http.post("/generate", json={"prompt": "a cursed prompt"}).json()["job_id"]
        status = wait_for_status(http, job_id, {"succeeded", "failed"})
    assert status["status"] == "failed"
    assert status["attempts"] == 1  # permanent: not retried
    assert "injected fault" in status["last_error"]
    assert status["finished_at"] is not None
    assert status["media"] == []
