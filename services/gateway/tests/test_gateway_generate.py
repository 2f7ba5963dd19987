"""POST /generate, GET /status, idempotency, caller isolation, validation, and the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlmodel import select

from core.db import Database
from core.messaging import create_publisher
from core.models import Job, JobEvent
from gateway.outbox import OutboxRelay
from gateway.settings import GatewaySettings

from .conftest import Published  # type: ignore[import-not-found]

PROMPT = {"prompt": "a red fox in snow"}


async def test_generate_stores_job_and_publishes_it(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    db: Database,
    published: Published,
) -> None:
    response = await client.post(
        "/generate",
        json={"prompt": "  a red fox  ", "params": {"num_outputs": 2, "output_format": "png"}},
        headers=alice,
    )
    assert response.status_code == 202, response.text
    body = response.json()
    job_id = body["job_id"]
    assert body["status"] == "queued"
    assert body["status_url"] == f"http://gateway/status/{job_id}"
    assert response.headers["location"] == body["status_url"]

    messages = await published()  # by the outbox relay, after the 202
    assert [(m["queue_name"], m["actor_name"], m["args"]) for m in messages] == [
        ("generation", "generate_media", [job_id])
    ]
    async with db.session() as session:
        job = await session.get(Job, uuid.UUID(job_id))
        assert job is not None
        assert job.prompt == "a red fox"
        assert job.model == "black-forest-labs/flux-schnell"
        assert job.params["num_outputs"] == 2
        assert isinstance(job.params["seed"], int)  # fixed per job, see jobs.derived_seed
        assert job.enqueued_at is not None
        kinds = (await session.exec(select(JobEvent.kind).where(JobEvent.job_id == job.id))).all()
        assert list(kinds) == ["created", "enqueued"]


async def test_status_shows_the_job_to_its_owner_only(
    client: httpx.AsyncClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    job_id = (await client.post("/generate", json=PROMPT, headers=alice)).json()["job_id"]

    mine = await client.get(f"/status/{job_id}", headers=alice)
    assert mine.status_code == 200
    status = mine.json()
    assert status["status"] == "queued"
    assert status["prompt"] == "a red fox in snow"
    assert status["attempts"] == 0
    assert status["last_error"] is None
    assert status["media"] == []
    assert status["params"]["aspect_ratio"] == "1:1"

    theirs = await client.get(f"/status/{job_id}", headers=bob)
    assert theirs.status_code == 404
    assert theirs.json() == {"detail": f"Job {job_id} not found"}
    unknown = await client.get(f"/status/{uuid.uuid4()}", headers=alice)
    assert unknown.status_code == 404
    assert (await client.get("/status/not-a-uuid", headers=alice)).status_code == 422


async def test_generate_requires_a_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/generate", json=PROMPT)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    bad = await client.post("/generate", json=PROMPT, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, ["body", "prompt"]),
        ({"prompt": "   "}, ["body", "prompt"]),
        ({"prompt": "x" * 2001}, ["body", "prompt"]),
        ({"prompt": "ok", "params": {"num_outputs": 5}}, ["body", "params", "num_outputs"]),
        ({"prompt": "ok", "params": {"num_outputs": 0}}, ["body", "params", "num_outputs"]),
        ({"prompt": "ok", "params": {"aspect_ratio": "2:1"}}, ["body", "params", "aspect_ratio"]),
        ({"prompt": "ok", "params": {"output_format": "gif"}}, ["body", "params", "output_format"]),
        ({"prompt": "ok", "params": {"output_quality": 101}}, ["body", "params", "output_quality"]),
        ({"prompt": "ok", "params": {"seed": -1}}, ["body", "params", "seed"]),
        ({"prompt": "ok", "params": {"steps": 4}}, ["body", "params", "steps"]),
        ({"prompt": "ok", "model": "someone/else"}, ["body", "model"]),
        ({"prompt": "ok", "extra": 1}, ["body", "extra"]),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(
    client: httpx.AsyncClient, alice: dict[str, str], body: dict[str, Any], field: list[str]
) -> None:
    response = await client.post("/generate", json=body, headers=alice)
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [field]


async def test_malformed_json_is_a_422(client: httpx.AsyncClient, alice: dict[str, str]) -> None:
    response = await client.post(
        "/generate", content=b"{not json", headers={**alice, "Content-Type": "application/json"}
    )
    assert response.status_code == 422


async def test_idempotency_key_returns_the_same_job_per_caller(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    bob: dict[str, str],
    published: Published,
) -> None:
    key = {"Idempotency-Key": "order-42"}
    first = await client.post("/generate", json=PROMPT, headers={**alice, **key})
    again = await client.post("/generate", json=PROMPT, headers={**alice, **key})
    assert first.status_code == again.status_code == 202
    assert first.json()["job_id"] == again.json()["job_id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert len(await published()) == 1  # the replay publishes nothing

    conflict = await client.post(
        "/generate", json={"prompt": "something else"}, headers={**alice, **key}
    )
    assert conflict.status_code == 409
    assert "Idempotency-Key" in conflict.json()["detail"]

    other_caller = await client.post("/generate", json=PROMPT, headers={**bob, **key})
    assert other_caller.status_code == 202
    assert other_caller.json()["job_id"] != first.json()["job_id"]


async def test_broker_down_still_accepts_and_the_relay_publishes_later(
    make_settings: Callable[..., GatewaySettings],
    settings: GatewaySettings,
    db: Database,
    published: Published,
) -> None:
    from gateway.app import create_app

    from .conftest import token_for  # type: ignore[import-not-found]

    down = make_settings(broker_url="amqp://guest:guest@127.0.0.1:1/%2F")
    app = create_app(down)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            headers = await token_for(http, db, "carol")
            response = await http.post("/generate", json=PROMPT, headers=headers)
    assert response.status_code == 202
    job_id = uuid.UUID(response.json()["job_id"])
    async with db.session() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        assert job.status == "queued"
        assert job.enqueued_at is None

    # The broker is back: the next sweep publishes the job, exactly once.
    publisher = create_publisher(settings)
    relay = OutboxRelay(db, publisher, make_settings(gateway_unpublished_grace_seconds=0))
    try:
        assert await relay.sweep_unpublished() == 1
        assert await relay.sweep_unpublished() == 0
    finally:
        await publisher.close()
    assert [m["args"][0] for m in await published()] == [str(job_id)]
    async with db.session() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        assert job.enqueued_at is not None


async def test_the_relay_sends_again_jobs_left_untouched(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    make_settings: Callable[..., GatewaySettings],
    db: Database,
    published: Published,
) -> None:
    job_id = (await client.post("/generate", json=PROMPT, headers=alice)).json()["job_id"]
    assert len(await published()) == 1
    publisher = create_publisher(make_settings())
    fresh = OutboxRelay(db, publisher, make_settings(gateway_stale_job_seconds=3600))
    stale = OutboxRelay(db, publisher, make_settings(gateway_stale_job_seconds=0.001))
    try:
        assert await fresh.resend_stale() == 0  # recently published: left alone
        assert await stale.resend_stale() == 1  # as if its message had been lost
    finally:
        await publisher.close()
    assert [m["args"][0] for m in await published()] == [job_id]
