"""Webhooks from the mock, started as a real process, to a real receiver in the test's loop:
signed deliveries, the events filter, retries of `completed` only, cancel, shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiohttp import web
from replicate.webhook import Webhooks, WebhookSigningSecret

from testkit.processes import ServiceProcess, free_port, run_uvicorn

TOKEN = "webhook-test-token"
FLUX = "black-forest-labs/flux-schnell"
CREATE = f"/v1/models/{FLUX}/predictions"
RETRY_DELAYS = (0.05, 0.1, 0.2)
TIMEOUT = 15.0  # deadline for every wait; the happy path takes well under a second
TERMINAL = ("succeeded", "failed", "canceled")


def mock_env(**overrides: str) -> dict[str, str]:
    return {
        "REPLICATE_MOCK_API_TOKENS": TOKEN,
        "REPLICATE_MOCK_LATENCY_SECONDS": "1",  # wide status windows: bodies name the status
        "REPLICATE_MOCK_WEBHOOK_RETRY_DELAYS_SECONDS": ",".join(map(str, RETRY_DELAYS)),
        "REPLICATE_MOCK_WEBHOOK_TIMEOUT_SECONDS": "3",
        **overrides,
    }


@pytest.fixture(scope="module")
def mock() -> Iterator[ServiceProcess]:
    with run_uvicorn("replicate_mock.app:create_app", env=mock_env()) as proc:
        yield proc


def api_client(proc: ServiceProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=proc.base_url or "", headers={"Authorization": f"Bearer {TOKEN}"}
    )


@pytest.fixture
async def api(mock: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(mock) as client:
        (await client.post("/_mock/reset")).raise_for_status()  # no deliveries left over
        yield client


# -- the receiver -------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]  # names lowercased
    body: bytes

    def assert_signed_with(self, secret: str) -> None:
        """Replicate's own client verifies the signature (it raises if it does not match)."""
        Webhooks.validate(
            headers=self.headers, body=self.body.decode(), secret=WebhookSigningSecret(key=secret)
        )

    @property
    def prediction(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


class Receiver:
    """Records every POST; answers each path from a script of statuses, then 200."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._scripts: dict[str, deque[int]] = {}
        self._changed = asyncio.Condition()
        self.base_url = ""

    def url(self, path: str = "/hook") -> str:
        return f"{self.base_url}{path}"

    def script(self, path: str, *statuses: int) -> None:
        self._scripts.setdefault(path, deque()).extend(statuses)

    def at(self, path: str = "/hook") -> list[Delivery]:
        return [d for d in self.deliveries if d.path == path]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        delivery = Delivery(request.path, {k.lower(): v for k, v in request.headers.items()}, body)
        async with self._changed:
            self.deliveries.append(delivery)
            self._changed.notify_all()
        script = self._scripts.get(request.path)
        status = script.popleft() if script else 200
        headers = {"Location": self.url("/elsewhere")} if 300 <= status < 400 else None
        return web.Response(status=status, headers=headers)

    async def wait_for(
        self, predicate: Callable[[list[Delivery]], bool], path: str = "/hook"
    ) -> list[Delivery]:
        async with asyncio.timeout(TIMEOUT), self._changed:
            await self._changed.wait_for(lambda: predicate(self.at(path)))
        return self.at(path)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    receiver.base_url = f"http://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        await runner.cleanup()


# -- helpers ------------------------------------------------------------------------------


async def create(api: httpx.AsyncClient, webhook: str, **fields: Any) -> dict[str, Any]:
    body = {"input": {"prompt": "a fox"}, "webhook": webhook, **fields}
    response = await api.post(CREATE, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def stats_until(
    api: httpx.AsyncClient, predicate: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The mock's webhook counters, once they satisfy `predicate` (polled to a deadline)."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            webhooks: dict[str, Any] = (await api.get("/_mock/stats")).json()["webhooks"]
            if predicate(webhooks):
                return webhooks
            await asyncio.sleep(0.02)


def all_sent(webhooks: dict[str, Any]) -> bool:
    following: int = webhooks["following"]
    return following == 0


def statuses(deliveries: list[Delivery]) -> list[str]:
    return [d.prediction["status"] for d in deliveries]


def finished(deliveries: list[Delivery]) -> bool:
    return any(status in TERMINAL for status in statuses(deliveries))


# -- tests --------------------------------------------------------------------------------


async def test_every_event_arrives_signed_with_the_accounts_secret(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    secret = (await api.get("/v1/webhooks/default/secret")).json()["key"]
    created = await create(api, receiver.url())
    assert created["webhook"] == receiver.url()
    assert "webhook_events_filter" not in created  # not sent, so not echoed

    deliveries = await receiver.wait_for(finished)
    # No filter: every event the mock has (its output appears only on completion).
    assert statuses(deliveries) == ["starting", "processing", "succeeded"]
    for delivery in deliveries:
        delivery.assert_signed_with(secret)
        assert delivery.headers["user-agent"] == "Webhooks/1.66.0 (sender-mock)"
        assert delivery.headers["content-type"] == "application/json"
        keys = list(delivery.prediction)
        assert keys == sorted(keys)
        assert delivery.prediction["id"] == created["id"]
        assert delivery.prediction["webhook"] == receiver.url()
    assert len({d.headers["webhook-id"] for d in deliveries}) == 3  # one id per event
    final = (await api.get(f"/v1/predictions/{created['id']}")).json()
    assert deliveries[-1].prediction == final
    assert final["output"]

    webhooks = await stats_until(api, all_sent)
    assert webhooks["deliveries"] == {
        "completed": {"delivered": 1},
        "logs": {"delivered": 1},
        "start": {"delivered": 1},
    }
    assert webhooks["attempts"]["completed"] == {"ok": 1}


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (["completed"], [("completed", "succeeded")]),
        (["start"], [("start", "starting")]),
        (["completed", "start"], [("start", "starting"), ("completed", "succeeded")]),
        (["output"], [("output", "succeeded")]),
        (["logs"], [("logs", "processing"), ("logs", "succeeded")]),
    ],
)
async def test_the_events_filter_is_honoured(
    api: httpx.AsyncClient,
    receiver: Receiver,
    events: list[str],
    expected: list[tuple[str, str]],
) -> None:
    created = await create(api, receiver.url(), webhook_events_filter=events)
    assert created["webhook_events_filter"] == events
    webhooks = await stats_until(api, all_sent)  # nothing more will come
    deliveries = receiver.at()
    assert statuses(deliveries) == [status for _, status in expected]
    assert all(d.prediction["webhook_events_filter"] == events for d in deliveries)
    assert sorted(webhooks["deliveries"]) == sorted({event for event, _ in expected})


async def test_a_failing_completed_is_retried_with_the_same_webhook_id(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    secret = (await api.get("/v1/webhooks/default/secret")).json()["key"]
    receiver.script("/hook", 500, 503)
    await create(api, receiver.url(), webhook_events_filter=["completed"])
    deliveries = await receiver.wait_for(lambda d: len(d) >= 3)
    assert len({d.headers["webhook-id"] for d in deliveries}) == 1
    assert {d.body for d in deliveries} == {deliveries[0].body}
    for delivery in deliveries:
        delivery.assert_signed_with(secret)
    webhooks = await stats_until(api, all_sent)
    assert webhooks["attempts"] == {"completed": {"http_error": 2, "ok": 1}}
    assert webhooks["deliveries"] == {"completed": {"delivered": 1}}
    assert len(receiver.at()) == 3


async def test_completed_gives_up_after_the_retry_schedule(api: httpx.AsyncClient) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/hook"  # connection refused, every time
    await create(api, nobody, webhook_events_filter=["completed"])
    webhooks = await stats_until(api, all_sent)
    assert webhooks["attempts"] == {"completed": {"network_error": 1 + len(RETRY_DELAYS)}}
    assert webhooks["deliveries"] == {"completed": {"failed": 1}}


async def test_a_failed_start_is_not_retried(api: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.script("/hook", 500)
    await create(api, receiver.url(), webhook_events_filter=["start", "completed"])
    webhooks = await stats_until(api, all_sent)
    assert statuses(receiver.at()) == ["starting", "succeeded"]
    assert webhooks["attempts"] == {"completed": {"ok": 1}, "start": {"http_error": 1}}
    assert webhooks["deliveries"] == {"completed": {"delivered": 1}, "start": {"failed": 1}}


async def test_redirects_are_not_followed(api: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.script("/hook", 307)
    await create(api, receiver.url(), webhook_events_filter=["start"])
    webhooks = await stats_until(api, all_sent)
    assert [d.path for d in receiver.deliveries] == ["/hook"]
    assert webhooks["attempts"] == {"start": {"http_error": 1}}


async def test_a_canceled_prediction_sends_completed_at_once(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    (await api.post("/_mock/faults", json={"latency_seconds": 600})).raise_for_status()
    created = await create(api, receiver.url(), webhook_events_filter=["completed"])
    canceled = (await api.post(f"/v1/predictions/{created['id']}/cancel")).json()
    assert canceled["status"] == "canceled"
    [delivery] = await receiver.wait_for(finished)
    assert delivery.prediction == canceled
    assert delivery.prediction["logs"] is None


async def test_the_secret_endpoint_matches_the_official_client(mock: ServiceProcess) -> None:
    async with api_client(mock) as api:
        secret = (await api.get("/v1/webhooks/default/secret")).json()
        again = (await api.get("/v1/webhooks/default/secret")).json()
        assert secret == again  # one per process
        assert secret["key"].startswith("whsec_")
        unauthenticated = await api.get(
            "/v1/webhooks/default/secret", headers={"Authorization": ""}
        )
        assert unauthenticated.status_code == 401


async def test_shutdown_cancels_pending_retries(receiver: Receiver) -> None:
    env = mock_env(REPLICATE_MOCK_WEBHOOK_RETRY_DELAYS_SECONDS="600")
    with run_uvicorn("replicate_mock.app:create_app", env=env) as proc:
        receiver.script("/hook", 500)
        async with api_client(proc) as api:
            await create(api, receiver.url(), webhook_events_filter=["completed"])
            await receiver.wait_for(lambda d: len(d) == 1)
            assert (await api.get("/_mock/stats")).json()["webhooks"]["following"] == 1
        # SIGTERM; stop() falls back to SIGKILL (-9) if shutdown hangs. Uvicorn re-raises
        # the SIGTERM once it has shut down cleanly, hence -15.
        code = await asyncio.to_thread(proc.stop)
    assert code == -signal.SIGTERM, proc.stderr()
    logs = [json.loads(line) for line in proc.stderr().splitlines() if line.startswith("{")]
    dropped = [line for line in logs if line["msg"] == "dropping pending webhooks"]
    assert [line["predictions"] for line in dropped] == [1]
    assert "Application shutdown complete." in [line["msg"] for line in logs]
    assert "Traceback" not in proc.stderr()
    assert "Task was destroyed" not in proc.stderr()
    assert len(receiver.at()) == 1
