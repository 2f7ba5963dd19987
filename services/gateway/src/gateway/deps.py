from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from core.messaging import Publisher
from core.storage import MediaStorage
from core.web import settings_of
from gateway.settings import GatewaySettings


async def _settings(request: Request) -> GatewaySettings:
    return settings_of(request, GatewaySettings)


async def _publisher(request: Request) -> Publisher:
    publisher: Publisher = request.app.state.publisher
    return publisher


async def _storage(request: Request) -> MediaStorage:
    storage: MediaStorage = request.app.state.storage
    return storage


SettingsDep = Annotated[GatewaySettings, Depends(_settings)]
PublisherDep = Annotated[Publisher, Depends(_publisher)]
StorageDep = Annotated[MediaStorage, Depends(_storage)]
