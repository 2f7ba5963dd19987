"""The secret that Replicate signs its webhooks with, as the gateway knows it.

REPLICATE_WEBHOOK_SECRET when set; otherwise Replicate's answer to GET
/v1/webhooks/default/secret, asked once and kept. Replicate may rotate the secret: when a
delivery fails to verify with the kept one, the route asks again, at most once per
REFETCH_EVERY_SECONDS (so forged deliveries cannot make the gateway hammer Replicate).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from core.replicate import ReplicateError
from core.webhooks import MalformedSecret, decode_secret

log = logging.getLogger(__name__)

REFETCH_EVERY_SECONDS = 60.0

Fetch = Callable[[], Awaitable[str]]


class SecretUnavailable(Exception):
    """Replicate could not tell the secret (unreachable, refused, or an unusable answer)."""


class WebhookSecret:
    def __init__(
        self,
        configured: str | None,
        fetch: Fetch,
        *,
        refetch_every: float = REFETCH_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._configured = configured
        self._fetch = fetch
        self._refetch_every = refetch_every
        self._clock = clock
        self._secret = configured
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()  # concurrent first deliveries ask Replicate once

    async def current(self) -> str:
        """The kept secret, asked of Replicate on first use. Raises SecretUnavailable."""
        if self._secret is not None:
            return self._secret
        async with self._lock:
            if self._secret is None:
                self._secret = await self._fetch_now()
            return self._secret

    async def newer_than(self, stale: str) -> str | None:
        """A secret other than `stale` (which failed to verify a delivery): the one another
        delivery fetched meanwhile, or a fresh answer from Replicate if the last was asked at
        least REFETCH_EVERY_SECONDS ago; None if there is nothing newer (or it is too soon to
        ask). Raises SecretUnavailable."""
        if self._configured is not None:
            return None
        async with self._lock:
            if self._secret is not None and self._secret != stale:
                return self._secret
            if self._fetched_at is not None and (
                self._clock() - self._fetched_at < self._refetch_every
            ):
                return None
            fresh = await self._fetch_now()
            if fresh == self._secret:
                return None
            log.info("Replicate's webhook secret changed; using the new one")
            self._secret = fresh
            return fresh

    async def _fetch_now(self) -> str:
        self._fetched_at = self._clock()  # a failed ask counts too: at most one a minute
        try:
            secret = await self._fetch()
            decode_secret(secret)
        except (ReplicateError, MalformedSecret) as exc:
            log.warning("cannot get Replicate's webhook secret: %s", exc)
            raise SecretUnavailable(str(exc)) from exc
        return secret
