"""Reference app "raw asyncpg": no SQLAlchemy on the request path, an asyncpg pool.

The same routes and JSON as the services (GET /pets/{id}, POST /pets, POST /generate), one SQL
statement each (autocommit), the record returned as it comes back. No bearer token is required.
POST /generate inserts the job row, then publishes a Dramatiq-format message to the
`generation` queue with aio-pika and publisher confirms. (The request schemas come from core,
whose generation module imports the SQLModel models, so SQLAlchemy is imported but unused.)

`python -m bench.lean_asyncpg --port N --dsn postgresql://... [--broker-url amqp://...]`
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from fastapi import FastAPI, Request, Response, status

from bench.amqp import ConfirmingPublisher
from bench.lean_common import (
    POOL_SIZE,
    accepted,
    job_values,
    json_response,
    lean_parser,
    no_broker,
    not_found,
)
from bench.serve import serve
from core.schemas.generation import GenerateRequest
from core.schemas.pets import PetCreate

PET_COLUMNS = "id, name, pet_type, created_at, updated_at"  # every column of pets
GET_PET = f"SELECT {PET_COLUMNS} FROM pets WHERE id = $1"
INSERT_PET = f"INSERT INTO pets ({PET_COLUMNS}) VALUES ($1, $2, $3, $4, $4) RETURNING *"
INSERT_JOB = (
    "INSERT INTO jobs (id, owner_id, prompt, model, params, status, attempts, created_at,"
    " updated_at, enqueued_at) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10)"
)
OWNER = "SELECT id FROM users WHERE username = $1"


@dataclass
class _State:
    pool: asyncpg.Pool | None = None
    publisher: ConfirmingPublisher | None = None
    owner_id: uuid.UUID | None = None


def create_app(dsn: str, broker_url: str | None, owner: str) -> FastAPI:
    state = _State()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # The services' pool: DB_POOL_SIZE kept, as many again on overflow.
        state.pool = await asyncpg.create_pool(dsn, min_size=POOL_SIZE, max_size=2 * POOL_SIZE)
        try:
            if broker_url is not None:
                state.owner_id = await state.pool.fetchval(OWNER, owner)
                if state.owner_id is None:
                    raise RuntimeError(f"no user {owner!r}")
                state.publisher = await ConfirmingPublisher.connect(broker_url)
            yield
        finally:
            if state.publisher is not None:
                await state.publisher.close()
            await state.pool.close()

    app = FastAPI(title="reference: raw asyncpg", lifespan=lifespan)

    def pool() -> asyncpg.Pool:
        assert state.pool is not None
        return state.pool

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/pets/{pet_id}")
    async def get_pet(pet_id: uuid.UUID) -> Response:
        row = await pool().fetchrow(GET_PET, pet_id)
        if row is None:
            raise not_found(pet_id)
        return json_response(dict(row))

    @app.post("/pets", status_code=status.HTTP_201_CREATED)
    async def create_pet(data: PetCreate) -> Response:
        now = datetime.now(UTC)
        row = await pool().fetchrow(INSERT_PET, uuid.uuid4(), data.name, data.pet_type.value, now)
        assert row is not None
        return json_response(dict(row), 201, {"Location": f"/pets/{row['id']}"})

    @app.post("/generate", status_code=status.HTTP_202_ACCEPTED)
    async def generate(body: GenerateRequest, request: Request) -> Response:
        if state.publisher is None or state.owner_id is None:
            raise no_broker()
        job_id = uuid.uuid4()
        v = job_values(body, job_id=job_id, owner_id=state.owner_id)
        await pool().execute(
            INSERT_JOB,
            v["id"],
            v["owner_id"],
            v["prompt"],
            v["model"],
            json.dumps(v["params"]),
            v["status"],
            v["attempts"],
            v["created_at"],
            v["updated_at"],
            v["enqueued_at"],
        )
        await state.publisher.publish_generate(str(job_id))
        return accepted(request, job_id)

    return app


def main() -> None:
    args = lean_parser("python -m bench.lean_asyncpg").parse_args()
    serve(create_app(args.dsn, args.broker_url, args.owner), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
