"""GET /pets/{id} and POST /pets, coalesced across concurrent requests (core.batching).

Under load these two are most of the traffic, and each is one short statement whose cost is
mostly the round trip and the driver's per-statement work. The requests that arrive while one
statement is on its way share the next one: `id = ANY(:ids)` for reads, one INSERT for
creates. Alone, a request pays nothing extra. Each request still gets its own answer, and a
failing batch is retried one request at a time, so an error stays with the request that
caused it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from core.batching import Batcher, statement_batcher
from core.db import Database
from core.schemas.pets import PetCreate, PetPublic
from pet_api import pets


@dataclass(frozen=True, slots=True)
class PetBatches:
    reads: Batcher[uuid.UUID, PetPublic | None]
    creates: Batcher[PetCreate, PetPublic]

    async def get(self, pet_id: uuid.UUID) -> PetPublic | None:
        return await self.reads.submit(pet_id)

    async def create(self, data: PetCreate) -> PetPublic:
        return await self.creates.submit(data)


def pet_batches(db: Database) -> PetBatches:
    return PetBatches(
        reads=statement_batcher(db, pets.get_many),
        creates=statement_batcher(db, pets.create_many),
    )
