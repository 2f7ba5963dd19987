"""Reference app "AsyncSession + Core": SQLAlchemy 2 async, Core statements, no ORM objects.

The same routes and JSON as the services (GET /pets/{id}, POST /pets, POST /generate), each a
single Core statement through an AsyncSession, the row returned as it comes back. No bearer
token is required. POST /generate publishes with aio-pika and publisher confirms, like the raw
asyncpg app, so the two differ only in the database layer.

`python -m bench.lean_core --port N --dsn postgresql://... [--broker-url amqp://...]`
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import FastAPI, Request, Response, status
from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

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
from core.models import Job, Pet, User
from core.schemas.generation import GenerateRequest
from core.schemas.pets import PetCreate

PETS: Table = Pet.__table__  # type: ignore[attr-defined]
JOBS: Table = Job.__table__  # type: ignore[attr-defined]
USERS: Table = User.__table__  # type: ignore[attr-defined]


@dataclass
class _State:
    sessions: async_sessionmaker[AsyncSession] | None = None
    publisher: ConfirmingPublisher | None = None
    owner_id: uuid.UUID | None = None


def create_app(dsn: str, broker_url: str | None, owner: str) -> FastAPI:
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    state = _State()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        engine = create_async_engine(url, pool_size=POOL_SIZE, max_overflow=POOL_SIZE)
        state.sessions = async_sessionmaker(engine, expire_on_commit=False)
        try:
            if broker_url is not None:
                async with state.sessions() as session:
                    stmt = select(USERS.c.id).where(USERS.c.username == owner)
                    state.owner_id = (await session.execute(stmt)).scalar_one()
                state.publisher = await ConfirmingPublisher.connect(broker_url)
            yield
        finally:
            if state.publisher is not None:
                await state.publisher.close()
            await engine.dispose()

    app = FastAPI(title="reference: AsyncSession + Core", lifespan=lifespan)

    def sessions() -> async_sessionmaker[AsyncSession]:
        assert state.sessions is not None
        return state.sessions

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/pets/{pet_id}")
    async def get_pet(pet_id: uuid.UUID) -> Response:
        async with sessions()() as session:
            result = await session.execute(select(PETS).where(PETS.c.id == pet_id))
            row = result.mappings().first()
        if row is None:
            raise not_found(pet_id)
        return json_response(dict(row))

    @app.post("/pets", status_code=status.HTTP_201_CREATED)
    async def create_pet(data: PetCreate) -> Response:
        now = datetime.now(UTC)
        stmt = (
            insert(PETS)
            .values(
                id=uuid.uuid4(),
                name=data.name,
                pet_type=data.pet_type.value,
                created_at=now,
                updated_at=now,
            )
            .returning(*PETS.c)
        )
        async with sessions()() as session:
            row = (await session.execute(stmt)).mappings().one()
            await session.commit()
        return json_response(dict(row), 201, {"Location": f"/pets/{row['id']}"})

    @app.post("/generate", status_code=status.HTTP_202_ACCEPTED)
    async def generate(body: GenerateRequest, request: Request) -> Response:
        if state.publisher is None or state.owner_id is None:
            raise no_broker()
        job_id = uuid.uuid4()
        values = job_values(body, job_id=job_id, owner_id=state.owner_id)
        async with sessions()() as session:
            await session.execute(insert(JOBS).values(**values))
            await session.commit()
        await state.publisher.publish_generate(str(job_id))
        return accepted(request, job_id)

    return app


def main() -> None:
    args = lean_parser("python -m bench.lean_core").parse_args()
    serve(create_app(args.dsn, args.broker_url, args.owner), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
