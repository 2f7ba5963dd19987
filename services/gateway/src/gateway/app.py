"""Gateway API: wires settings, database, storage, the broker publisher, the outbox relay and
the webhook sender."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from core.auth import install_auth, warn_if_placeholder_secret
from core.db import create_database
from core.logging import configure_logging
from core.messaging import create_publisher
from core.replicate import ReplicateClient
from core.storage import create_storage
from core.tracing import setup_tracing
from core.web import install_common
from core.webui import install_web_ui
from gateway.deps import Gateway, job_intake
from gateway.housekeeping import Housekeeper
from gateway.job_changes import JobChanges
from gateway.outbox import OutboxRelay
from gateway.routes import caller_webhooks, events, generate, jobs, media, webhooks
from gateway.settings import GatewaySettings
from gateway.webhook_secret import WebhookSecret
from gateway.webhook_sender import WebhookSender

WEB_PAGES = Path(__file__).parent / "web"  # the gallery at /

DESCRIPTION = """
Queue image generation jobs and follow them to the end.

1. `POST /auth/token` (form fields `username`, `password`) for a bearer token.
2. `POST /generate` with a prompt: **202** with the job id and its status URL.
3. `GET /status/{job_id}` until `status` is `succeeded`, `failed` or `canceled`; or follow
   `GET /jobs/{job_id}/events` (Server-Sent Events), or send `Prefer: wait` with the POST to
   get the finished job in its answer.
4. `GET /media/{job_id}/{index}` for each file.

Or give `POST /generate` a `webhook` (an https URL): it gets the job when it starts and when it
ends, signed with Standard Webhooks headers; `GET /webhooks/default/secret` has the key to
verify them with, and `GET /jobs/{job_id}/webhooks` shows every delivery and attempt.

A 202 means the job is stored durably: it reaches a terminal state even if the broker or a
worker fails meanwhile. Jobs are private to their caller.
"""


def openapi_naming_models(app: FastAPI, models: frozenset[str]) -> Callable[[], dict[str, Any]]:
    """The OpenAPI document, with the models this gateway accepts as the `model` enum (they
    are a setting, so the shared request schema cannot list them)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            model = schema["components"]["schemas"]["GenerateRequest"]["properties"]["model"]
            for option in model["anyOf"]:
                if option.get("type") == "string":
                    option["enum"] = sorted(models)
            _headers_are_never_null(schema)
        return app.openapi_schema  # type: ignore[return-value]

    return openapi


def _headers_are_never_null(schema: dict[str, Any]) -> None:
    """An optional header is absent or a string, never JSON null: its schema says string (the
    `anyOf [..., null]` FastAPI writes for `str | None` would invite a literal "null")."""
    for operation in (op for path in schema["paths"].values() for op in path.values()):
        for parameter in operation.get("parameters", []):
            options = parameter["schema"].get("anyOf")
            if parameter["in"] == "header" and options:
                [string] = [o for o in options if o.get("type") != "null"]
                parameter["schema"] = {**string, "title": parameter["schema"].get("title")}


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    configure_logging("gateway", settings.log_level)
    setup_tracing("gateway")  # before install_common: it decides whether requests are traced
    # httpx logs each request's URL at INFO: the webhook sender's are the callers' own, and may
    # carry a token in their query. The sender logs every attempt itself, without the URL.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        warn_if_placeholder_secret(settings)
        db = create_database(settings, application_name="gateway")
        publisher = create_publisher(settings)
        relay = OutboxRelay(db, publisher, settings)
        storage = create_storage(settings)
        changes = JobChanges(settings, application_name="gateway-job-changes")
        replicate = ReplicateClient.from_settings(settings)  # asked only for the webhook secret
        configured = settings.replicate_webhook_secret
        webhook_secret = WebhookSecret(
            None if configured is None else configured.get_secret_value(),
            replicate.get_webhook_secret,
        )
        sender = WebhookSender(db, settings)
        app.state.db = db  # what core's shared routes and dependencies read
        app.state.gateway = Gateway(
            settings=settings,
            db=db,
            relay=relay,
            publisher=publisher,
            storage=storage,
            intake=job_intake(db, settings.gateway_rate_limit_per_minute),
            changes=changes,
            webhook_secret=webhook_secret,
            webhooks=sender,
        )
        housekeeper = Housekeeper(db, publisher, storage, settings)
        background = [
            asyncio.create_task(relay.run(), name="outbox-relay"),
            asyncio.create_task(housekeeper.run(), name="housekeeping"),
            asyncio.create_task(changes.run(), name="job-changes"),
            asyncio.create_task(sender.run(), name="webhook-sender"),
        ]
        try:
            yield
        finally:
            changes.close()  # (already done by `python -m gateway` before connections drain)
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await sender.aclose()
            await publisher.close()
            await replicate.aclose()
            await storage.close()
            await db.dispose()

    app = FastAPI(
        title="Media gateway",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.openapi = openapi_naming_models(app, settings.allowed_models)  # type: ignore[method-assign]
    install_common(app, max_body_bytes=settings.gateway_max_body_bytes)
    install_auth(app, settings)
    app.include_router(generate.router)
    app.include_router(jobs.router)
    app.include_router(events.router)
    app.include_router(media.router)
    app.include_router(webhooks.router)
    app.include_router(caller_webhooks.router)
    # Media redirected to presigned S3 URLs are fetched from there (the bucket needs CORS).
    redirected = settings.gateway_media_redirect and settings.storage_backend == "s3"
    install_web_ui(app, WEB_PAGES, fetch_from=[settings.presigned_origin] if redirected else [])
    return app
