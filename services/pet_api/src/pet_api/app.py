"""The pet API's FastAPI app. `python -m pet_api` serves it with JSON logs; `uvicorn --factory
pet_api.app:create_app` works too, with uvicorn's own logging."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from core.auth import install_auth, warn_if_placeholder_secret
from core.db import create_database
from core.tracing import setup_tracing
from core.web import install_common
from core.webui import install_web_ui
from pet_api.batches import pet_batches
from pet_api.first_user import ensure_first_user
from pet_api.routes import router as pets_router
from pet_api.settings import PetApiSettings

SERVICE = "pet_api"

DESCRIPTION = """
A directory of pets.

* **Reads** (`GET /pets`, `GET /pets/{id}`) are public unless `PET_API_READS_REQUIRE_AUTH` is set.
* **Writes** need a bearer token: `POST /auth/token` with a username and password
  (form fields, OAuth2 password flow), then send `Authorization: Bearer <access_token>`.
  The **Authorize** button above does this for you.
* Lists are keyset-paginated, oldest first: pass the `next_cursor` of one page as
  `?cursor=` to get the next; it is `null` on the last page.
* Every error is JSON with a `detail`: 401/403 for auth, 404 for an unknown pet,
  422 for invalid input, 503 while the database is unreachable.
"""

TAGS = [
    {"name": "pets", "description": "Create, list, read, replace, change and delete pets."},
    {"name": "auth", "description": "Exchange a username and password for a bearer token."},
    {"name": "health", "description": "Liveness and readiness probes."},
]


def create_app(settings: PetApiSettings | None = None) -> FastAPI:
    settings = settings or PetApiSettings()
    setup_tracing(SERVICE)  # before install_common: it decides whether requests are traced

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        warn_if_placeholder_secret(settings)
        # The asyncpg pool belongs to this (the serving) event loop.
        db = create_database(settings, application_name=SERVICE)
        app.state.db = db
        app.state.batches = pet_batches(db)
        try:
            await ensure_first_user(db=db, settings=settings)
            yield
        finally:
            await db.dispose()

    app = FastAPI(
        title="Pet API",
        version="1.0.0",
        summary="CRUD for pets, with JWT-protected writes",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_common(app, max_body_bytes=settings.pet_api_max_body_bytes)
    install_auth(app, settings)
    app.include_router(pets_router)
    install_web_ui(app, Path(__file__).parent / "web")  # the page at /, outside the OpenAPI
    return app
