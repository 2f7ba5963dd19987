"""Test controls under /_mock: set faults, read counters, reset. Same bearer token as the API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from replicate_mock.faults import FaultUpdate
from replicate_mock.state import MockState, require_token

router = APIRouter(prefix="/_mock", tags=["mock control"])
Authed = Annotated[MockState, Depends(require_token)]


def _faults(state: MockState) -> dict[str, object]:
    return {**state.faults.describe(), "latency_seconds": state.latency_seconds}


@router.get("/faults")
async def get_faults(state: Authed) -> dict[str, object]:
    return _faults(state)


@router.post("/faults")
async def set_faults(update: FaultUpdate, state: Authed) -> dict[str, object]:
    """Change rates, queue faults for the next calls ({"next": {"create": ["429"]}})."""
    state.faults.apply(update)
    if update.latency_seconds is not None:
        state.latency_seconds = update.latency_seconds
    return _faults(state)


@router.get("/stats")
async def stats(state: Authed) -> dict[str, object]:
    webhooks = {**state.webhooks.sender.stats.describe(), "following": state.webhooks.following}
    return {**state.stats.describe(), "predictions_stored": len(state.store), "webhooks": webhooks}


@router.post("/reset")
async def reset(state: Authed) -> dict[str, object]:
    """Forget predictions, pending webhooks and counters; faults and latency go back to the
    settings."""
    state.reset()
    return _faults(state)
