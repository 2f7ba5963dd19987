"""Injected faults: random rates from settings, plus queues of "the next N calls do X".

Kinds: "429" (throttled, nothing created), "500" (error, nothing created), "500_after_create"
(create only: the prediction exists but the caller gets a 500), "slow" (answer after
slow_seconds; on create the prediction is made first, so a client read timeout leaves one
behind), "fail" (create only: the prediction ends failed).
"""

from __future__ import annotations

import random
from collections import Counter, deque
from typing import Literal

from pydantic import BaseModel, Field, model_validator

FaultKind = Literal["429", "500", "500_after_create", "slow", "fail"]
Endpoint = Literal["create", "get", "cancel", "list"]
CREATE_ONLY: frozenset[str] = frozenset({"500_after_create", "fail"})
# Drawn in this order; the first that fires wins.
DRAW_ORDER: tuple[FaultKind, ...] = ("429", "500", "500_after_create", "slow", "fail")

Rate = float | None


class FaultUpdate(BaseModel):
    """Body of POST /_mock/faults; omitted fields keep their value."""

    rate_429: Rate = Field(default=None, ge=0, le=1)
    rate_500: Rate = Field(default=None, ge=0, le=1)
    rate_500_after_create: Rate = Field(default=None, ge=0, le=1)
    rate_slow: Rate = Field(default=None, ge=0, le=1)
    rate_fail: Rate = Field(default=None, ge=0, le=1)
    retry_after_seconds: int | None = Field(default=None, ge=0)
    slow_seconds: float | None = Field(default=None, ge=0)
    latency_seconds: float | None = Field(default=None, ge=0)
    # Appended to the queues: e.g. {"create": ["429", "429", "500_after_create"]}.
    next: dict[Endpoint, list[FaultKind]] = Field(default_factory=dict)
    clear_next: bool = False

    @model_validator(mode="after")
    def _create_only(self) -> FaultUpdate:
        for endpoint, kinds in self.next.items():
            if endpoint != "create" and CREATE_ONLY.intersection(kinds):
                raise ValueError(f"{sorted(CREATE_ONLY)} only apply to create")
        return self


class Faults:
    def __init__(
        self,
        rates: dict[FaultKind, float],
        *,
        retry_after_seconds: int,
        slow_seconds: float,
        seed: int | None,
    ) -> None:
        self.rates = dict(rates)
        self.retry_after_seconds = retry_after_seconds
        self.slow_seconds = slow_seconds
        self.queues: dict[Endpoint, deque[FaultKind]] = {
            e: deque() for e in ("create", "get", "cancel", "list")
        }
        self._rng = random.Random(seed)

    def draw(self, endpoint: Endpoint) -> FaultKind | None:
        if self.queues[endpoint]:
            return self.queues[endpoint].popleft()
        for kind in DRAW_ORDER:
            if endpoint != "create" and kind in CREATE_ONLY:
                continue
            rate = self.rates.get(kind, 0.0)
            if rate > 0 and self._rng.random() < rate:
                return kind
        return None

    def apply(self, update: FaultUpdate) -> None:
        for kind in DRAW_ORDER:
            value: Rate = getattr(update, f"rate_{kind}")
            if value is not None:
                self.rates[kind] = value
        if update.retry_after_seconds is not None:
            self.retry_after_seconds = update.retry_after_seconds
        if update.slow_seconds is not None:
            self.slow_seconds = update.slow_seconds
        if update.clear_next:
            for queue in self.queues.values():
                queue.clear()
        for endpoint, kinds in update.next.items():
            self.queues[endpoint].extend(kinds)

    def describe(self) -> dict[str, object]:
        return {
            "rates": dict(self.rates),
            "retry_after_seconds": self.retry_after_seconds,
            "slow_seconds": self.slow_seconds,
            "next": {e: list(q) for e, q in self.queues.items()},
        }


class Stats:
    def __init__(self) -> None:
        self.predictions_created = 0
        self.calls: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()

    def describe(self) -> dict[str, object]:
        return {
            "predictions_created": self.predictions_created,
            "calls": dict(self.calls),
            "faults": dict(self.faults),
        }
