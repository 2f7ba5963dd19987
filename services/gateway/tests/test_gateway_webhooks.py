"""POST /webhooks/replicate against the real RabbitMQ (and the Replicate mock for the secret):
verified deliveries reach the poll queue as `prediction_webhook` messages; unsigned, stale,
forged and malformed ones get a 401 and publish nothing; the secret is asked of Replicate once
and again (rate limited) when it may have been rotated."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pika
import pytest

from core.messaging import POLL_QUEUE, WEBHOOK_ACTOR, queue_arguments
from core.settings import BrokerSettings
from core.webhooks import generate_secret, new_message_id, sign, sign_headers
from gateway.app import create_app
from gateway.settings import GatewaySettings
from gateway.webhook_secret import SecretUnavailable, WebhookSecret
from testkit.processes import ServiceProcess, free_port, run_uvicorn

from .conftest import drain_queue, serving  # type: ignore[import-not-found]

SECRET = generate_secret()
MOCK_TOKEN = "gateway-webhook-tests-token"
PREDICTION: dict[str, Any] = {
    "id": "dapztkbwgxrg20cfgsmrz2gm38",
    "model": "black-forest-labs/flux-schnell",
    "version": "hidden",
    "input": {"prompt": "a red fox in snow", "seed": 40213},
    "logs": "Using seed: 40213\n",
    "output": ["https://replicate.delivery/xezq/abc/out-0.webp"],
    "data_removed": False,
    "error": None,
    "status": "succeeded",
    "source": "api",
    "created_at": "2025-06-09T07:02:34.263Z",
    "started_at": "2025-06-09T07:02:34.270303Z",
    "completed_at": "2025-06-09T07:02:35.120411Z",
    "metrics": {"predict_time": 0.85, "total_time": 0.857},
    "urls": {"get": "https://api.replicate.com/v1/predictions/dapztkbwgxrg20cfgsmrz2gm38"},
}
BODY = json.dumps(PREDICTION, sort_keys=True, separators=(",", ":")).encode()


def made_for(job_id: uuid.UUID | str) -> bytes:
    """A body as Replicate sends it: with the `webhook` the prediction was created with."""
    webhook = f"https://api.example.com/webhooks/replicate?job_id={job_id}"
    return json.dumps({**PREDICTION, "webhook": webhook}, sort_keys=True).encode()


@pytest.fixture
async def http(make_settings: Callable[..., GatewaySettings]) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(make_settings(replicate_webhook_secret=SECRET)) as (_, client):
        yield client


def _declare_poll_queue(broker_url: str) -> None:
    arguments = queue_arguments(BrokerSettings(broker_url=broker_url))(POLL_QUEUE)
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        connection.channel().queue_declare(POLL_QUEUE, durable=True, arguments=arguments)
    finally:
        connection.close()


@pytest.fixture
def poll_queue(broker_url: str) -> Callable[[], list[dict[str, Any]]]:
    """`poll_queue()`: the messages published to the poll queue since the test began."""
    _declare_poll_queue(broker_url)
    drain_queue(broker_url, POLL_QUEUE)
    return lambda: drain_queue(broker_url, POLL_QUEUE)


def url(job_id: uuid.UUID | str) -> str:
    return f"/webhooks/replicate?job_id={job_id}"


def signed(body: bytes = BODY, secret: str = SECRET, **override: str) -> dict[str, str]:
    headers = sign_headers(secret, body, msg_id=new_message_id())
    return {**headers, "content-type": "application/json", **override}


async def test_a_verified_delivery_is_handed_to_the_worker(
    http: httpx.AsyncClient, poll_queue: Callable[[], list[dict[str, Any]]]
) -> None:
    job_id = uuid.uuid4()
    body = made_for(job_id)
    response = await http.post(url(job_id), content=body, headers=signed(body))
    assert response.status_code == 204, response.text
    [message] = poll_queue()
    assert (message["queue_name"], message["actor_name"]) == (POLL_QUEUE, WEBHOOK_ACTOR)
    sent_job, prediction = message["args"]
    assert sent_job == str(job_id)
    assert prediction["id"] == PREDICTION["id"]
    assert prediction["status"] == "succeeded"
    assert prediction["output"] == PREDICTION["output"]
    assert prediction["logs"] == PREDICTION["logs"]


async def test_a_duplicate_delivery_is_taken_again(
    http: httpx.AsyncClient, poll_queue: Callable[[], list[dict[str, Any]]]
) -> None:
    """Replicate retries `completed` with the same webhook-id; each copy gets its 2xx (the
    worker's conditional transitions make the second one a no-op; see the worker's tests)."""
    job_id = uuid.uuid4()
    headers = signed()
    first = await http.post(url(job_id), content=BODY, headers=headers)
    again = await http.post(url(job_id), content=BODY, headers=headers)
    assert (first.status_code, again.status_code) == (204, 204)
    assert [m["args"][0] for m in poll_queue()] == [str(job_id), str(job_id)]


def _forged() -> dict[str, str]:
    return signed(**{"webhook-signature": "v1," + sign(generate_secret(), "x", 1, b"")[3:]})


def _stale(seconds: int) -> dict[str, str]:
    msg_id, timestamp = new_message_id(), int(time.time()) - seconds
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(SECRET, msg_id, timestamp, BODY),
    }


REFUSED: dict[str, Callable[[], dict[str, str]]] = {
    "unsigned": lambda: {"content-type": "application/json"},
    "no-signature": lambda: {k: v for k, v in signed().items() if k != "webhook-signature"},
    "no-id": lambda: {k: v for k, v in signed().items() if k != "webhook-id"},
    "forged": _forged,
    "another-secret": lambda: signed(secret=generate_secret()),
    "other-body": lambda: signed(body=BODY.replace(b"succeeded", b"failed")),
    "stale": lambda: _stale(6 * 60),
    "from-the-future": lambda: _stale(-6 * 60),
    "malformed-timestamp": lambda: signed(**{"webhook-timestamp": "yesterday"}),
    "malformed-signature": lambda: signed(**{"webhook-signature": "not a signature"}),
    "other-id": lambda: signed(**{"webhook-id": "msg_someoneelse"}),
}


@pytest.mark.parametrize("make_headers", REFUSED.values(), ids=REFUSED.keys())
@pytest.mark.parametrize(
    "target", [url(uuid.uuid4()), url("not-a-uuid"), "/webhooks/replicate"], ids=str
)
async def test_untrusted_deliveries_are_refused_and_publish_nothing(
    http: httpx.AsyncClient,
    poll_queue: Callable[[], list[dict[str, Any]]],
    make_headers: Callable[[], dict[str, str]],
    target: str,
) -> None:
    response = await http.post(target, content=BODY, headers=make_headers())
    assert response.status_code == 401, response.text
    assert response.json()["detail"].startswith("Webhook refused: ")
    assert poll_queue() == []


async def test_a_delivery_replayed_to_another_jobs_url_is_refused(
    http: httpx.AsyncClient, poll_queue: Callable[[], list[dict[str, Any]]]
) -> None:
    """The signature does not cover the URL; the body's `webhook` does name the job."""
    body = made_for(uuid.uuid4())
    response = await http.post(url(uuid.uuid4()), content=body, headers=signed(body))
    assert response.status_code == 401, response.text
    assert response.json()["detail"] == "Webhook refused: it was made for another job"
    mangled = made_for("not-a-uuid")
    response = await http.post(url(uuid.uuid4()), content=mangled, headers=signed(mangled))
    assert response.status_code == 401, response.text
    assert poll_queue() == []


def test_the_refused_cases_are_distinct() -> None:
    assert len({json.dumps(make(), sort_keys=True) for make in REFUSED.values()}) == len(REFUSED)


@pytest.mark.parametrize(
    ("target", "body", "where"),
    [
        ("not-a-uuid", BODY, ["query", "job_id"]),
        (None, b"[1, 2]", ["body"]),
        (None, b"{not json", ["body"]),
        (None, json.dumps({"id": "abc"}).encode(), ["body", "status"]),
        (None, json.dumps({**PREDICTION, "status": "exploded"}).encode(), ["body", "status"]),
        (None, json.dumps({**PREDICTION, "id": "../../admin"}).encode(), ["body", "id"]),
        (None, json.dumps({**PREDICTION, "input": "x"}).encode(), ["body", "input"]),
        (None, b"\xff\xfe not utf-8", ["body"]),
    ],
    ids=[
        "job-id",
        "array",
        "not-json",
        "no-status",
        "unknown-status",
        "bad-id",
        "bad-input",
        "not-utf8",
    ],
)
async def test_signed_but_invalid_deliveries_are_422_and_publish_nothing(
    http: httpx.AsyncClient,
    poll_queue: Callable[[], list[dict[str, Any]]],
    target: str | None,
    body: bytes,
    where: list[str],
) -> None:
    response = await http.post(url(target or uuid.uuid4()), content=body, headers=signed(body))
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][: len(where)] == where
    assert poll_queue() == []


async def test_a_broker_that_refuses_gets_503_so_replicate_retries(
    make_settings: Callable[..., GatewaySettings],
) -> None:
    nowhere = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    settings = make_settings(replicate_webhook_secret=SECRET, broker_url=nowhere)
    async with serving(settings) as (_, client):
        response = await client.post(url(uuid.uuid4()), content=BODY, headers=signed())
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"]
    assert "broker" in response.json()["detail"]


# -- the secret from Replicate -----------------------------------------------------------------


@pytest.fixture(scope="module")
def replicate_mock() -> Iterator[ServiceProcess]:
    env = {"REPLICATE_MOCK_API_TOKENS": MOCK_TOKEN, "REPLICATE_MOCK_WEBHOOK_SECRET": SECRET}
    with run_uvicorn("replicate_mock.app:create_app", env) as proc:
        yield proc


def mock_stats(mock: ServiceProcess) -> dict[str, Any]:
    response = httpx.get(
        f"{mock.base_url}/_mock/stats", headers={"Authorization": f"Bearer {MOCK_TOKEN}"}
    )
    stats: dict[str, Any] = response.raise_for_status().json()
    return stats


async def test_without_a_configured_secret_replicates_is_asked_once(
    make_settings: Callable[..., GatewaySettings],
    replicate_mock: ServiceProcess,
    poll_queue: Callable[[], list[dict[str, Any]]],
) -> None:
    settings = make_settings(
        replicate_base_url=replicate_mock.base_url, replicate_api_token=MOCK_TOKEN
    )
    asked_before = mock_stats(replicate_mock)["calls"].get("webhook_secret", 0)
    async with serving(settings) as (_, client):
        unsigned = await client.post(url(uuid.uuid4()), content=BODY)
        assert unsigned.status_code == 401
        assert mock_stats(replicate_mock)["calls"].get("webhook_secret", 0) == asked_before
        for _ in range(3):
            response = await client.post(url(uuid.uuid4()), content=BODY, headers=signed())
            assert response.status_code == 204, response.text
    assert mock_stats(replicate_mock)["calls"]["webhook_secret"] == asked_before + 1
    assert len(poll_queue()) == 3


async def test_an_unreachable_replicate_gets_503_and_publishes_nothing(
    make_settings: Callable[..., GatewaySettings],
    poll_queue: Callable[[], list[dict[str, Any]]],
) -> None:
    settings = make_settings(replicate_base_url=f"http://127.0.0.1:{free_port()}")
    async with serving(settings) as (_, client):
        response = await client.post(url(uuid.uuid4()), content=BODY, headers=signed())
    assert response.status_code == 503, response.text
    assert "secret" in response.json()["detail"]
    assert poll_queue() == []


class FakeReplicate:
    """Answers GET /v1/webhooks/default/secret from a list (a rotation is the next one)."""

    def __init__(self, *secrets: str) -> None:
        self.secrets = list(secrets)
        self.asked = 0

    async def fetch(self) -> str:
        self.asked += 1
        return self.secrets[min(self.asked, len(self.secrets)) - 1]


async def test_a_rotated_secret_is_asked_again_at_most_once_a_minute() -> None:
    old, new = generate_secret(), generate_secret()
    replicate = FakeReplicate(old, new)
    now = [1000.0]
    secret = WebhookSecret(None, replicate.fetch, refetch_every=60, clock=lambda: now[0])
    assert await secret.current() == old
    assert await secret.current() == old
    assert replicate.asked == 1
    now[0] += 30  # a delivery that fails to verify, too soon after the last ask
    assert await secret.newer_than(old) is None
    assert replicate.asked == 1
    now[0] += 31
    assert await secret.newer_than(old) == new
    assert await secret.current() == new
    assert await secret.newer_than(old) == new  # another delivery that raced: no new ask
    assert replicate.asked == 2
    now[0] += 61  # forged deliveries: the answer is the same secret, nothing newer
    assert await secret.newer_than(new) is None
    assert replicate.asked == 3


async def test_a_configured_secret_is_never_asked_for() -> None:
    replicate = FakeReplicate(generate_secret())
    secret = WebhookSecret(SECRET, replicate.fetch)
    assert await secret.current() == SECRET
    assert await secret.newer_than(SECRET) is None
    assert replicate.asked == 0


async def test_an_unusable_answer_is_unavailable() -> None:
    secret = WebhookSecret(None, FakeReplicate("not-a-secret").fetch)
    with pytest.raises(SecretUnavailable):
        await secret.current()


async def test_a_delivery_signed_with_a_rotated_secret_is_taken(
    make_settings: Callable[..., GatewaySettings],
    poll_queue: Callable[[], list[dict[str, Any]]],
) -> None:
    old, new = generate_secret(), generate_secret()
    replicate = FakeReplicate(old, new)
    now = [0.0]
    app = create_app(make_settings())
    async with app.router.lifespan_context(app):
        secret = WebhookSecret(None, replicate.fetch, refetch_every=60, clock=lambda: now[0])
        app.state.gateway = dataclasses.replace(app.state.gateway, webhook_secret=secret)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            before = await client.post(url(uuid.uuid4()), content=BODY, headers=signed(secret=old))
            now[0] = 61.0  # Replicate rotated the secret a minute later
            after = await client.post(url(uuid.uuid4()), content=BODY, headers=signed(secret=new))
            stale = await client.post(url(uuid.uuid4()), content=BODY, headers=signed(secret=old))
    assert (before.status_code, after.status_code, stale.status_code) == (204, 204, 401)
    assert replicate.asked == 2
    assert len(poll_queue()) == 2


def test_a_malformed_configured_secret_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="not a webhook secret"):
        GatewaySettings(replicate_webhook_secret="r8_not-a-webhook-secret")  # type: ignore[arg-type]
