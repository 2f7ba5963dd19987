"""The mock's FastAPI app: Replicate's prediction API, output files and test controls."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from core.logging import configure_logging
from replicate_mock import api, control
from replicate_mock.problems import Problem, problem_handler
from replicate_mock.settings import MockSettings
from replicate_mock.state import MockState

log = logging.getLogger(__name__)


def create_app(settings: MockSettings | None = None) -> FastAPI:
    settings = settings or MockSettings()
    state = MockState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Under a server only: in-process tests keep pytest's own log capture.
        configure_logging("replicate_mock", settings.log_level)
        log.info(
            "replicate mock ready",
            extra={"latency_seconds": settings.replicate_mock_latency_seconds},
        )
        yield
        await state.webhooks.aclose()  # pending deliveries end with the process

    app = FastAPI(
        title="Replicate mock",
        description="Replicate's prediction API with real (synthetic) images, for local runs.",
        lifespan=lifespan,
    )
    app.state.mock = state
    app.state.settings = settings
    app.add_exception_handler(Problem, problem_handler)
    app.include_router(api.router)
    app.include_router(control.router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
