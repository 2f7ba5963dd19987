"""GET /jobs, POST /jobs/{id}/cancel and GET /media/{id}/{index}."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import update
from sqlmodel import col

from core.db import Database
from core.models import Job, JobMedia
from core.storage import create_storage, media_key
from gateway.settings import GatewaySettings


async def make_jobs(http: httpx.AsyncClient, headers: dict[str, str], n: int) -> list[str]:
    return [
        (await http.post("/generate", json={"prompt": f"p{i}"}, headers=headers)).json()["job_id"]
        for i in range(n)
    ]


async def store_finished_media(
    db: Database, settings: GatewaySettings, job_id: str, image: bytes
) -> None:
    """What the worker leaves behind for a succeeded job: the object in storage, its
    job_media row, and the job's status."""
    storage = create_storage(settings)
    await storage.ensure_ready()
    stored = await storage.put(media_key(uuid.UUID(job_id), 0, "png"), image, "image/png")
    await storage.close()
    async with db.session() as session:
        session.add(
            JobMedia(
                job_id=uuid.UUID(job_id),
                index=0,
                storage_key=stored.key,
                content_type="image/png",
                size_bytes=stored.size,
                sha256=stored.sha256,
                source_url="http://127.0.0.1:8002/files/x/out-0.png",
            )
        )
        await session.execute(
            update(Job).where(col(Job.id) == uuid.UUID(job_id)).values(status="succeeded")
        )
        await session.commit()


async def test_jobs_are_listed_newest_first_with_a_cursor(
    client: httpx.AsyncClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    ids = await make_jobs(client, alice, 5)
    await make_jobs(client, bob, 2)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/jobs", params=params, headers=alice)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


async def test_jobs_filter_by_status_and_reject_bad_queries(
    client: httpx.AsyncClient, alice: dict[str, str], db: Database
) -> None:
    ids = await make_jobs(client, alice, 3)
    async with db.session() as session:
        await session.execute(
            update(Job).where(col(Job.id) == uuid.UUID(ids[1])).values(status="failed")
        )
        await session.commit()
    failed = (await client.get("/jobs?status=failed", headers=alice)).json()
    assert [j["id"] for j in failed["items"]] == [ids[1]]
    assert (await client.get("/jobs?status=lost", headers=alice)).status_code == 422
    assert (await client.get("/jobs?limit=101", headers=alice)).status_code == 422
    bad = await client.get("/jobs?cursor=garbage", headers=alice)
    assert bad.status_code == 422
    (error,) = bad.json()["detail"]
    assert error["loc"] == ["query", "cursor"]
    assert "next_cursor" in error["msg"]


async def test_cancel_a_queued_job_once(
    client: httpx.AsyncClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    [job_id] = await make_jobs(client, alice, 1)
    assert (await client.post(f"/jobs/{job_id}/cancel", headers=bob)).status_code == 404
    canceled = await client.post(f"/jobs/{job_id}/cancel", headers=alice)
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    assert canceled.json()["finished_at"] is not None
    again = await client.post(f"/jobs/{job_id}/cancel", headers=alice)
    assert again.status_code == 409
    assert again.json()["detail"] == f"Job {job_id} already canceled"


async def test_media_is_streamed_to_its_owner(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    bob: dict[str, str],
    db: Database,
    settings: GatewaySettings,
) -> None:
    [job_id] = await make_jobs(client, alice, 1)
    image = b"\x89PNG\r\n\x1a\n" + b"pixels" * 1000
    await store_finished_media(db, settings, job_id, image)

    status = (await client.get(f"/status/{job_id}", headers=alice)).json()
    [media] = status["media"]
    assert media == {
        "index": 0,
        "url": f"http://gateway/media/{job_id}/0",
        "content_type": "image/png",
        "size_bytes": len(image),
        "sha256": hashlib.sha256(image).hexdigest(),
        "expired": False,
    }
    listed = (await client.get("/jobs", headers=alice)).json()["items"]
    assert [item["media"] for item in listed] == [[media]]  # a gallery needs no GET per job
    response = await client.get(f"/media/{job_id}/0", headers=alice)
    assert response.status_code == 200
    assert response.content == image
    assert response.headers["content-type"] == "image/png"
    assert (await client.get(f"/media/{job_id}/0", headers=bob)).status_code == 404
    assert (await client.get(f"/media/{job_id}/1", headers=alice)).status_code == 404
    assert (await client.get(f"/media/{job_id}/0")).status_code == 401


async def test_media_redirects_to_a_presigned_s3_url(
    make_settings: Callable[..., GatewaySettings],
    db: Database,
    moto_s3: Any,
) -> None:
    from gateway.app import create_app

    from .conftest import token_for  # type: ignore[import-not-found]

    settings = make_settings(
        gateway_media_redirect=True,
        **{k.lower(): v for k, v in moto_s3.env(moto_s3.new_bucket()).items()},
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            alice = await token_for(http, db, "alice")
            [job_id] = await make_jobs(http, alice, 1)
            image = b"\x89PNG\r\n\x1a\n" + b"s3-pixels" * 100
            await store_finished_media(db, settings, job_id, image)
            response = await http.get(f"/media/{job_id}/0", headers=alice)
    assert response.status_code == 307
    presigned = httpx.get(response.headers["location"])
    assert presigned.status_code == 200
    assert presigned.content == image
