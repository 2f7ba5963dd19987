"""What the two reference apps share: command line, JSON responses, the job row's values.

The reference apps answer with the services' JSON shapes but skip what the issue counts as
waste: no ORM objects, no response-model validation (rows are serialised as they come back),
no middleware, no dependency graph, no access log. They do not check bearer tokens either:
the services' rows include auth, theirs do not.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException, Request, Response, status
from pydantic_core import to_json

from bench.serve import port_parser
from core.jobs import derived_seed
from core.schemas.generation import GenerateRequest

# The gateway's defaults (gateway.settings.GatewaySettings), fixed here.
DEFAULT_MODEL = "black-forest-labs/flux-schnell"
ALLOWED_MODELS = frozenset({DEFAULT_MODEL})
POOL_SIZE = 10  # core.db: pool_size = max_overflow = DB_POOL_SIZE (default 10)


def lean_parser(prog: str) -> argparse.ArgumentParser:
    parser = port_parser(prog)
    parser.add_argument("--dsn", required=True, help="postgresql://user@host:port/db")
    parser.add_argument("--broker-url", help="amqp://...; without it POST /generate answers 503")
    parser.add_argument("--owner", default="bench", help="username that owns the jobs")
    return parser


def json_response(
    body: Mapping[str, Any], status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    # pydantic-core writes UUIDs and datetimes exactly as the services' response models do.
    return Response(
        to_json(body), status_code=status_code, media_type="application/json", headers=headers
    )


def not_found(pet_id: uuid.UUID) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"Pet {pet_id} not found")


def no_broker() -> HTTPException:
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="started without a broker")


def job_values(body: GenerateRequest, *, job_id: uuid.UUID, owner_id: uuid.UUID) -> dict[str, Any]:
    """The columns the gateway writes for a new job, minus idempotency_key/request_hash
    (the reference apps take no Idempotency-Key). created_at is taken here, before the
    INSERT. enqueued_at is set too: the reference apps publish before they answer, and the
    gateway running beside them on the same database must not take their jobs for its own
    unpublished ones (its sweep would publish them all again)."""
    model = body.model or DEFAULT_MODEL
    if model not in ALLOWED_MODELS:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="Unknown model")
    params = body.params.model_dump()
    if params.get("seed") is None:
        params["seed"] = derived_seed(job_id)
    now = datetime.now(UTC)
    return {
        "id": job_id,
        "owner_id": owner_id,
        "prompt": body.prompt,
        "model": model,
        "params": params,
        "status": "queued",
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        "enqueued_at": now,
    }


def accepted(request: Request, job_id: uuid.UUID) -> Response:
    url = f"{request.base_url}status/{job_id}"
    return json_response(
        {"job_id": job_id, "status": "queued", "status_url": url}, 202, {"Location": url}
    )
