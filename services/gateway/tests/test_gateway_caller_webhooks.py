"""Caller webhooks through the gateway app (its lifespan runs the sender) over the real
database, to a real receiver: the URL rules at submit time and at every attempt, secrets and
their rotation, deliveries signed, retried and recorded, and what the caller sees of them.

Jobs move with the statements the worker runs (core.jobs); tests/test_e2e_caller_webhooks.py
runs the worker itself."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core import jobs, webhook_deliveries
from core.db import Database
from core.models import User
from core.schemas.generation import GenerateRequest
from gateway import webhook_targets
from gateway.settings import GatewaySettings
from gateway.webhook_sender import WebhookSender, retry_delay
from gateway.webhook_targets import ResolutionUnavailable, WebhookUrlRejected
from testkit.http import field_error
from testkit.webhooks import NEVER_ANSWER, ReceivedWebhook, WebhookReceiver, webhook_receiver

from .conftest import serving, token_for  # type: ignore[import-not-found]

PUBLIC_IP = "93.184.216.34"
FILE = jobs.MediaFile(0, "generations/x/0.png", "image/png", 3, "cd" * 32, "http://o/0.png")
WAIT = 30.0  # deadline of every wait; each takes well under a second
# Fast retries, a receiver on 127.0.0.1, and media URLs on the test client's own base.
FAST: dict[str, Any] = {
    "gateway_public_url": "http://gateway",
    "gateway_webhook_allow_private": True,
    "gateway_webhook_poll_interval_seconds": 0.05,
    "gateway_webhook_retry_min_seconds": 0.05,
    "gateway_webhook_retry_max_seconds": 0.2,
    "gateway_webhook_timeout_seconds": 5,
    "gateway_webhook_max_attempts": 3,
}


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
async def hooks(
    make_settings: Callable[..., GatewaySettings], db: Database
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway with fast webhook retries; its client logs in as carol."""
    async with serving(make_settings(**FAST)) as (_, http):
        http.headers.update(await token_for(http, db, "carol"))
        yield http


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with webhook_receiver() as receiver:
        yield receiver


async def submit(http: httpx.AsyncClient, webhook: str, **fields: Any) -> uuid.UUID:
    response = await http.post("/generate", json={"prompt": "a fox", "webhook": webhook, **fields})
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["job_id"])


async def run_to_success(db: Database, job_id: uuid.UUID) -> None:
    """What the worker does to a job that works: running, then succeeded with its file."""
    async with db.session() as session:
        assert await jobs.mark_running(session, job_id, f"p-{job_id}", "created")
        assert await jobs.mark_succeeded(session, job_id, [FILE])


async def deliveries_when(
    http: httpx.AsyncClient,
    job_id: uuid.UUID,
    done: Callable[[list[dict[str, Any]]], bool],
) -> list[dict[str, Any]]:
    """GET /jobs/{id}/webhooks, polled until `done` holds for its items."""
    async with asyncio.timeout(WAIT):
        while True:
            response = await http.get(f"/jobs/{job_id}/webhooks")
            assert response.status_code == 200, response.text
            items: list[dict[str, Any]] = response.json()["items"]
            if done(items):
                return items
            await asyncio.sleep(0.02)


def settled(count: int) -> Callable[[list[dict[str, Any]]], bool]:
    """`count` deliveries, none pending any more."""
    return lambda items: len(items) == count and all(d["status"] != "pending" for d in items)


def verifies(received: ReceivedWebhook, key: str) -> bool:
    try:
        standardwebhooks.Webhook(key).verify(received.body, received.headers, json_parse=False)
    except standardwebhooks.WebhookVerificationError:
        return False
    return True


# --- the URL rules at submit time -------------------------------------------------------------

# Names here resolve without DNS (numeric forms, /etc/hosts): the test needs no network.
REFUSED = [
    ("http://93.184.216.34/hook", "must be an https:// URL"),
    ("ftp://93.184.216.34/hook", "must be an https:// URL"),
    ("not a url", "must be an https:// URL"),
    ("https://", "no host"),
    ("https://user:secret@93.184.216.34/hook", "credentials"),
    ("https://93.184.216.34:0/hook", "port"),
    ("https://exa mple.com/hook", "not a valid host name"),
    ("https://[fe80::1%25eth0]/hook", "not a valid host name"),
    ("https://127.0.0.1/hook", "127.0.0.1 is not a public address"),
    ("https://127.1:8443/hook", "resolves to 127.0.0.1"),
    ("https://2130706433/hook", "resolves to 127.0.0.1"),
    ("https://0x7f000001/hook", "resolves to 127.0.0.1"),
    ("https://localhost/hook", "not a public address"),
    ("https://10.1.2.3/hook", "not a public address"),
    ("https://172.16.0.1/hook", "not a public address"),
    ("https://192.168.1.1/hook", "not a public address"),
    ("https://100.64.0.1/hook", "not a public address"),
    ("https://169.254.169.254/latest/meta-data/", "not a public address"),
    ("https://224.0.0.1/hook", "not a public address"),
    ("https://240.0.0.1/hook", "not a public address"),
    ("https://0.0.0.0/hook", "not a public address"),
    ("https://255.255.255.255/hook", "not a public address"),
    ("https://192.0.2.1/hook", "not a public address"),
    ("https://[::1]/hook", "::1 is not a public address"),
    ("https://[::]/hook", "not a public address"),
    ("https://[fe80::1]/hook", "not a public address"),
    ("https://[fd00::1]/hook", "not a public address"),
    ("https://[ff02::1]/hook", "not a public address"),
    ("https://[::ffff:127.0.0.1]/hook", "not a public address"),
    ("https://[::ffff:10.0.0.1]/hook", "not a public address"),
    ("https://[64:ff9b::a00:1]/hook", "not a public address"),
    ("https://[2002:7f00:1::1]/hook", "not a public address"),
    ("https://[2001:db8::1]/hook", "not a public address"),
]


@pytest.mark.parametrize(("url", "why"), REFUSED, ids=[url for url, _ in REFUSED])
async def test_submit_refuses_a_webhook_that_may_not_be_called(
    client: httpx.AsyncClient, alice: dict[str, str], db: Database, url: str, why: str
) -> None:
    response = await client.post(
        "/generate", json={"prompt": "a fox", "webhook": url}, headers=alice
    )
    error = field_error(response, ["body", "webhook"])
    assert why in error["msg"]
    listed = await client.get("/jobs", headers=alice)
    assert listed.json()["items"] == []  # nothing stored


@pytest.mark.parametrize(
    "url",
    [
        f"https://{PUBLIC_IP}/hook?source=gateway",
        "https://[2606:4700:4700::1111]:8443/hook",
        "https://[::ffff:93.184.216.34]/hook",
    ],
)
async def test_submit_accepts_a_webhook_on_a_public_address(
    client: httpx.AsyncClient, alice: dict[str, str], url: str
) -> None:
    response = await client.post(
        "/generate", json={"prompt": "a fox", "webhook": url}, headers=alice
    )
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/hook", "https://localhost/hook", "http://[::1]/hook"]
)
async def test_private_webhooks_are_allowed_only_when_configured(
    make_settings: Callable[..., GatewaySettings], db: Database, url: str
) -> None:
    async with serving(make_settings(gateway_webhook_allow_private=True)) as (_, http):
        headers = await token_for(http, db, "dev")
        ok = await http.post("/generate", json={"prompt": "a", "webhook": url}, headers=headers)
        assert ok.status_code == 202, ok.text
        still = "https://user:pw@127.0.0.1/hook"
        refused = await http.post(
            "/generate", json={"prompt": "a", "webhook": still}, headers=headers
        )
        assert "credentials" in field_error(refused, ["body", "webhook"])["msg"]


async def test_dns_that_does_not_answer_is_a_503_not_a_verdict(
    client: httpx.AsyncClient, alice: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unavailable(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(webhook_targets, "system_resolver", unavailable)
    response = await client.post(
        "/generate", json={"prompt": "a", "webhook": "https://hooks.example.com/"}, headers=alice
    )
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"


def resolving_to(*answers: str) -> webhook_targets.Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        return list(answers)

    return resolve


async def test_every_address_of_a_name_must_be_public() -> None:
    url = "https://hooks.example.com/hook"

    async def check(resolver: webhook_targets.Resolver, timeout: float = WAIT) -> None:
        await webhook_targets.check(
            url, allow_private=False, timeout_seconds=timeout, resolver=resolver
        )

    await check(resolving_to(PUBLIC_IP, "2606:4700:4700::1111"))
    with pytest.raises(WebhookUrlRejected, match=r"resolves to 10\.0\.0\.7"):
        await check(resolving_to(PUBLIC_IP, "10.0.0.7"))  # one private answer is enough
    with pytest.raises(WebhookUrlRejected, match="has no address"):
        await check(resolving_to())

    async def no_such_host(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(WebhookUrlRejected, match="cannot be resolved"):
        await check(no_such_host)

    async def never(host: str, port: int) -> list[str]:
        await asyncio.Event().wait()
        return []

    with pytest.raises(ResolutionUnavailable, match="no DNS answer"):
        await check(never, timeout=0.05)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        (PUBLIC_IP, True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("2002:808:808::1", True),
        ("64:ff9b::808:808", True),
        ("127.0.0.1", False),
        ("127.255.0.1", False),
        ("10.0.0.1", False),
        ("172.31.255.255", False),
        ("192.168.0.1", False),
        ("100.64.0.1", False),
        ("169.254.169.254", False),
        ("224.0.0.251", False),
        ("239.255.255.250", False),
        ("240.0.0.1", False),
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("198.18.0.1", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fec0::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("ff0e::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:192.168.1.1", False),
        ("64:ff9b::7f00:1", False),
        ("2002:a00:1::1", False),
        ("2001:db8::1", False),
        ("100::1", False),
    ],
)
def test_which_addresses_are_public(address: str, public: bool) -> None:
    assert webhook_targets.is_public_address(ipaddress.ip_address(address)) is public


def test_retries_double_from_the_minimum_to_the_maximum_with_jitter(
    make_settings: Callable[..., GatewaySettings],
) -> None:
    settings = make_settings(
        gateway_webhook_retry_min_seconds=1, gateway_webhook_retry_max_seconds=900
    )
    for attempt, nominal in [(1, 1), (2, 2), (3, 4), (10, 512), (11, 900), (14, 900), (99, 900)]:
        delays = {retry_delay(attempt, settings).total_seconds() for _ in range(50)}
        assert all(0.8 * nominal <= d <= 1.2 * nominal for d in delays)
        assert len(delays) > 1  # jittered


# --- secrets ------------------------------------------------------------------------------------


async def test_a_secret_is_made_on_first_use_and_rotated_on_request(
    client: httpx.AsyncClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    first = await client.get("/webhooks/default/secret", headers=alice)
    assert first.status_code == 200
    assert first.headers["cache-control"] == "no-store"
    key = first.json()["key"]
    assert key.startswith("whsec_")
    assert (await client.get("/webhooks/default/secret", headers=alice)).json() == {"key": key}
    assert (await client.get("/webhooks/default/secret", headers=bob)).json()["key"] != key

    rotated = await client.post("/webhooks/default/secret/rotate", headers=alice)
    assert rotated.status_code == 200
    assert rotated.headers["cache-control"] == "no-store"
    new_key = rotated.json()["key"]
    assert new_key.startswith("whsec_")
    assert new_key != key
    assert (await client.get("/webhooks/default/secret", headers=alice)).json()["key"] == new_key

    assert (await client.get("/webhooks/default/secret")).status_code == 401


# --- deliveries -------------------------------------------------------------------------------


async def test_completed_is_retried_until_delivered_each_attempt_signed_with_one_id(
    hooks: httpx.AsyncClient, receiver: WebhookReceiver, db: Database
) -> None:
    receiver.script("/hook", 500, 503, 204)
    job_id = await submit(hooks, receiver.url(), webhook_events_filter=["completed"])
    await run_to_success(db, job_id)

    [delivery] = await deliveries_when(hooks, job_id, settled(1))
    assert delivery["event"] == "completed"
    assert delivery["status"] == "delivered"
    assert delivery["url"] == receiver.url()
    assert delivery["next_attempt_at"] is None
    attempts = delivery["attempts"]
    assert [(a["attempt"], a["status_code"]) for a in attempts] == [(1, 500), (2, 503), (3, 204)]
    assert [a["error"] for a in attempts] == ["answered 500", "answered 503", None]
    assert all(a["duration_ms"] >= 0 and a["created_at"] for a in attempts)

    received = receiver.at("/hook")
    assert len(received) == 3
    assert {r.headers["webhook-id"] for r in received} == {delivery["webhook_id"]}
    # The sender made the caller's secret at the first attempt; GET shows that same key.
    key = (await hooks.get("/webhooks/default/secret")).json()["key"]
    assert all(verifies(r, key) for r in received)
    assert all(r.headers["content-type"] == "application/json" for r in received)
    # The body is the job as GET /status shows it, every time (but for updated_at: the outbox
    # relay marks the job published, a change after the event, while this test is that fast).
    status = (await hooks.get(f"/status/{job_id}")).json()
    for r in received:
        assert {**r.json, "updated_at": None} == {**status, "updated_at": None}
    assert status["media"][0]["url"] == f"http://gateway/media/{job_id}/0"


async def test_a_delivery_that_never_succeeds_is_given_up(
    hooks: httpx.AsyncClient, receiver: WebhookReceiver, db: Database
) -> None:
    receiver.script("/down", 500, 500, 500, 500)
    job_id = await submit(hooks, receiver.url("/down"), webhook_events_filter=["completed"])
    await run_to_success(db, job_id)
    [delivery] = await deliveries_when(hooks, job_id, settled(1))
    assert delivery["status"] == "failed"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 500]  # max 3
    assert len(receiver.at("/down")) == 3


async def test_start_and_completed_are_sent_as_the_filter_says_and_start_only_once(
    hooks: httpx.AsyncClient, receiver: WebhookReceiver, db: Database
) -> None:
    receiver.script("/start", 500)  # start is not retried
    both = await submit(hooks, receiver.url("/both"))
    start = await submit(hooks, receiver.url("/start"), webhook_events_filter=["start"])
    completed = await submit(hooks, receiver.url("/completed"), webhook_events_filter=["completed"])
    for job_id in (both, start, completed):
        await run_to_success(db, job_id)

    shown = await deliveries_when(hooks, both, settled(2))
    assert [(d["event"], d["status"]) for d in shown] == [
        ("start", "delivered"),
        ("completed", "delivered"),
    ]
    assert shown[0]["webhook_id"] != shown[1]["webhook_id"]
    assert sorted(r.json["status"] for r in receiver.at("/both")) == ["running", "succeeded"]

    [shown_start] = await deliveries_when(hooks, start, settled(1))
    assert (shown_start["event"], shown_start["status"]) == ("start", "failed")
    assert [a["status_code"] for a in shown_start["attempts"]] == [500]
    assert [r.json["status"] for r in receiver.at("/start")] == ["running"]

    [shown_completed] = await deliveries_when(hooks, completed, settled(1))
    assert shown_completed["event"] == "completed"
    assert [r.json["status"] for r in receiver.at("/completed")] == ["succeeded"]


async def test_after_a_rotation_deliveries_verify_with_the_old_and_the_new_key(
    hooks: httpx.AsyncClient, receiver: WebhookReceiver, db: Database
) -> None:
    old = (await hooks.get("/webhooks/default/secret")).json()["key"]
    new = (await hooks.post("/webhooks/default/secret/rotate")).json()["key"]
    job_id = await submit(hooks, receiver.url(), webhook_events_filter=["completed"])
    await run_to_success(db, job_id)
    await deliveries_when(hooks, job_id, settled(1))

    [received] = receiver.at("/hook")
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    assert verifies(received, old)
    assert verifies(received, new)
    stranger = (await hooks.post("/webhooks/default/secret/rotate")).json()["key"]
    assert not verifies(received, stranger)


async def test_a_cancel_wakes_the_sender_at_once(
    make_settings: Callable[..., GatewaySettings], receiver: WebhookReceiver, db: Database
) -> None:
    # By itself the sender would not look again for a minute, past every wait here.
    settings = make_settings(**{**FAST, "gateway_webhook_poll_interval_seconds": 60})
    async with serving(settings) as (_, http):
        http.headers.update(await token_for(http, db, "dave"))
        job_id = await submit(http, receiver.url("/canceled"))
        assert (await http.post(f"/jobs/{job_id}/cancel")).status_code == 200
        [received] = await receiver.wait_for(lambda r: len(r) == 1, "/canceled")
    assert received.json["status"] == "canceled"
    assert received.json["cancel_reason"] in (None, "caller")


async def test_redirects_are_not_followed(
    hooks: httpx.AsyncClient, receiver: WebhookReceiver, db: Database
) -> None:
    receiver.script("/moved", 302)
    job_id = await submit(hooks, receiver.url("/moved"), webhook_events_filter=["start"])
    await run_to_success(db, job_id)
    [delivery] = await deliveries_when(hooks, job_id, settled(1))
    [attempt] = delivery["attempts"]
    assert attempt["status_code"] == 302
    assert "redirects are not followed" in attempt["error"]
    assert receiver.at("/elsewhere") == []


async def test_a_receiver_that_never_answers_holds_up_no_other_delivery(
    hooks: httpx.AsyncClient, receiver: WebhookReceiver, db: Database
) -> None:
    receiver.script("/silent", NEVER_ANSWER)
    silent = await submit(hooks, receiver.url("/silent"), webhook_events_filter=["start"])
    await run_to_success(db, silent)
    await receiver.wait_for(lambda r: len(r) == 1, "/silent")

    other = await submit(hooks, receiver.url("/other"), webhook_events_filter=["completed"])
    await run_to_success(db, other)
    await deliveries_when(hooks, other, settled(1))
    # Delivered while the silent receiver still holds its request: nothing waited for it.
    assert receiver.hanging == 1
    [pending] = (await hooks.get(f"/jobs/{silent}/webhooks")).json()["items"]
    assert (pending["status"], pending["attempts"]) == ("pending", [])


async def test_an_attempt_without_an_answer_ends_at_the_timeout(
    make_settings: Callable[..., GatewaySettings], receiver: WebhookReceiver, db: Database
) -> None:
    receiver.script("/silent", NEVER_ANSWER)
    settings = make_settings(**{**FAST, "gateway_webhook_timeout_seconds": 0.3})
    async with serving(settings) as (_, http):
        http.headers.update(await token_for(http, db, "erin"))
        job_id = await submit(http, receiver.url("/silent"), webhook_events_filter=["start"])
        await run_to_success(db, job_id)
        [delivery] = await deliveries_when(http, job_id, settled(1))
    [attempt] = delivery["attempts"]
    assert (attempt["status_code"], attempt["error"]) == (None, "no answer within 0.3 s")


async def test_a_jobs_deliveries_are_shown_to_its_caller_only(
    client: httpx.AsyncClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    job_id = (await client.post("/generate", json={"prompt": "a"}, headers=alice)).json()["job_id"]
    mine = await client.get(f"/jobs/{job_id}/webhooks", headers=alice)
    assert (mine.status_code, mine.json()) == (200, {"items": []})
    assert (await client.get(f"/jobs/{job_id}/webhooks", headers=bob)).status_code == 404
    assert (await client.get(f"/jobs/{uuid.uuid4()}/webhooks", headers=alice)).status_code == 404
    assert (await client.get("/jobs/not-a-uuid/webhooks", headers=alice)).status_code == 422
    assert (await client.get(f"/jobs/{job_id}/webhooks")).status_code == 401


# --- where an attempt connects: the checked address, with the URL's own name -------------------


def certificate_for(name: str, tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for `name`: the receiver's TLS context, and a client context
    that trusts that certificate only."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_file, key_file = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_file.write_bytes(cert_pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return server, client


async def send_once(
    db: Database,
    settings: GatewaySettings,
    url: str,
    resolver: webhook_targets.Resolver,
    verify: ssl.SSLContext,
) -> dict[str, Any]:
    """A job with `url` as its webhook (stored as if it passed the submit check) runs; one
    sender round attempts its `start` delivery. What the caller then sees of it."""
    async with db.session() as session:
        user = User(username="frank", hashed_password="x")
        session.add(user)
        await session.commit()
        owner = user.id
    request = GenerateRequest.model_validate(
        {"prompt": "a fox", "webhook": url, "webhook_events_filter": ["start"]}
    )
    job = jobs.new_job(owner_id=owner, request=request, model="m", idempotency_key=None)
    async with db.session() as session:
        await jobs.insert_many(session, [job])
        assert await jobs.mark_running(session, job.id, "p1", "created")
    sender = WebhookSender(db, settings, resolver=resolver, verify=verify)
    try:
        assert await sender.send_due() == 1
    finally:
        await sender.aclose()
    async with db.session() as session:
        [delivery] = await webhook_deliveries.for_job(session, job.id, owner) or []
    return delivery.model_dump(mode="json")


async def test_an_attempt_connects_to_the_resolved_address_with_the_urls_name(
    make_settings: Callable[..., GatewaySettings], db: Database, tmp_path: Path
) -> None:
    server_tls, client_tls = certificate_for("hooks.test", tmp_path)
    async with webhook_receiver(server_tls) as tls_receiver:
        port = tls_receiver.base_url.rsplit(":", 1)[1]
        delivery = await send_once(
            db,
            make_settings(**FAST),
            f"https://hooks.test:{port}/hook",
            resolving_to("127.0.0.1"),
            client_tls,
        )
    assert delivery["status"] == "delivered", delivery
    [received] = tls_receiver.at("/hook")
    assert received.headers["host"] == f"hooks.test:{port}"
    assert tls_receiver.server_names == ["hooks.test"]  # SNI: the URL's name, not the address


async def test_the_certificate_must_be_for_the_urls_name(
    make_settings: Callable[..., GatewaySettings], db: Database, tmp_path: Path
) -> None:
    server_tls, client_tls = certificate_for("hooks.test", tmp_path)
    async with webhook_receiver(server_tls) as tls_receiver:
        port = tls_receiver.base_url.rsplit(":", 1)[1]
        delivery = await send_once(
            db,
            make_settings(**FAST),
            f"https://impostor.test:{port}/hook",
            resolving_to("127.0.0.1"),
            client_tls,
        )
    [attempt] = delivery["attempts"]
    assert (delivery["status"], attempt["status_code"]) == ("failed", None)
    assert "certificate" in attempt["error"].lower() or "hostname" in attempt["error"].lower()
    assert tls_receiver.received == []


async def test_a_name_that_now_resolves_to_a_private_address_gets_nothing(
    make_settings: Callable[..., GatewaySettings], db: Database, tmp_path: Path
) -> None:
    """DNS rebinding: public when the job was submitted, 127.0.0.1 at delivery time."""
    server_tls, client_tls = certificate_for("rebind.test", tmp_path)
    async with webhook_receiver(server_tls) as tls_receiver:
        port = tls_receiver.base_url.rsplit(":", 1)[1]
        delivery = await send_once(
            db,
            make_settings(**{**FAST, "gateway_webhook_allow_private": False}),
            f"https://rebind.test:{port}/hook",
            resolving_to("127.0.0.1"),
            client_tls,
        )
    [attempt] = delivery["attempts"]
    assert attempt["status_code"] is None
    assert attempt["error"] == (
        "refused: rebind.test resolves to 127.0.0.1, which is not a public address"
    )
    assert tls_receiver.received == []
    assert tls_receiver.server_names == []  # not even a connection
