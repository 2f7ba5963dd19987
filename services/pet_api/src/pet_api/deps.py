"""Request dependencies: settings, the coalesced reads and creates, the read-access policy."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from core.auth import Caller, OptionalUser, unauthorized
from core.web import settings_of
from pet_api.batches import PetBatches
from pet_api.settings import PetApiSettings


async def _settings(request: Request) -> PetApiSettings:
    return settings_of(request, PetApiSettings)


SettingsDep = Annotated[PetApiSettings, Depends(_settings)]


async def _batches(request: Request) -> PetBatches:
    batches: PetBatches = request.app.state.batches
    return batches


PetBatchesDep = Annotated[PetBatches, Depends(_batches)]


async def read_access(settings: SettingsDep, user: OptionalUser) -> Caller | None:
    """Reads are public unless PET_API_READS_REQUIRE_AUTH; a bad token is refused either way."""
    if user is None and settings.pet_api_reads_require_auth:
        raise unauthorized("Not authenticated: send 'Authorization: Bearer <token>'")
    return user


ReadAccess = Annotated[Caller | None, Depends(read_access)]
