from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from core.storage import MediaStorage
from core.web import settings_of
from gateway.outbox import OutboxRelay
from gateway.settings import GatewaySettings


async def _settings(request: Request) -> GatewaySettings:
    return settings_of(request, GatewaySettings)


async def _relay(request: Request) -> OutboxRelay:
    relay: OutboxRelay = request.app.state.relay
    return relay


async def _storage(request: Request) -> MediaStorage:
    storage: MediaStorage = request.app.state.storage
    return storage


SettingsDep = Annotated[GatewaySettings, Depends(_settings)]
RelayDep = Annotated[OutboxRelay, Depends(_relay)]
StorageDep = Annotated[MediaStorage, Depends(_storage)]
