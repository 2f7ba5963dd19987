"""POST one webhook event, signed like Replicate's sender, retrying only `completed`."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable
from typing import Literal

import httpx

from core.webhooks import new_message_id, sign_headers
from replicate_mock.webhook_fields import Event

log = logging.getLogger(__name__)

USER_AGENT = "Webhooks/1.66.0 (sender-mock)"  # real ones: "Webhooks/1.66.0 (sender-...)"
Attempt = Literal["ok", "http_error", "network_error"]
Delivery = Literal["delivered", "failed"]


class WebhookStats:
    """Counters for /_mock/stats: attempts and final outcomes, by event."""

    def __init__(self) -> None:
        self.attempts: Counter[tuple[Event, Attempt]] = Counter()
        self.deliveries: Counter[tuple[Event, Delivery]] = Counter()

    def describe(self) -> dict[str, dict[str, dict[str, int]]]:
        def nest(counts: Iterable[tuple[tuple[str, str], int]]) -> dict[str, dict[str, int]]:
            out: dict[str, dict[str, int]] = {}
            for (event, outcome), count in sorted(counts):
                out.setdefault(event, {})[outcome] = count
            return out

        return {
            "attempts": nest(self.attempts.items()),
            "deliveries": nest(self.deliveries.items()),
        }


class WebhookSender:
    def __init__(
        self,
        secret: str,
        *,
        timeout_seconds: float,
        concurrency: int,
        retry_delays: tuple[float, ...],
    ) -> None:
        self.secret = secret
        self.timeout_seconds = timeout_seconds
        self.retry_delays = retry_delays
        self.stats = WebhookStats()
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        # Made on first use: it belongs to the event loop that serves the app.
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.timeout_seconds,
                follow_redirects=False,  # Replicate does not follow them either
                trust_env=False,  # a proxy from the environment has no business here
                limits=httpx.Limits(max_connections=self._concurrency),
            )
        return self._client

    async def deliver(self, url: str, event: Event, body: bytes) -> bool:
        """Send `body` as `event`; `completed` is retried on the delay schedule, others never.

        Every attempt carries the same `webhook-id` (receivers deduplicate on it).
        """
        msg_id = new_message_id()
        delays = self.retry_delays if event == "completed" else ()
        for retry, delay in enumerate((0.0, *delays)):
            if delay:
                await asyncio.sleep(delay)
            if await self._attempt(url, event, msg_id, body, retry=retry):
                self.stats.deliveries[event, "delivered"] += 1
                return True
        self.stats.deliveries[event, "failed"] += 1
        log.warning("webhook gave up", extra={"event": event, "url": url, "webhook_id": msg_id})
        return False

    async def _attempt(
        self, url: str, event: Event, msg_id: str, body: bytes, *, retry: int
    ) -> bool:
        headers = {
            **sign_headers(self.secret, body, msg_id=msg_id),  # signed anew: a fresh timestamp
            "content-type": "application/json",
            "user-agent": USER_AGENT,
        }
        outcome: Attempt
        status: int | None = None
        async with self._slots:
            try:
                # A hard bound too: httpx's timeout is per read, a trickling receiver resets it.
                async with asyncio.timeout(self.timeout_seconds):
                    request = self._http().stream("POST", url, content=body, headers=headers)
                    async with request as response:  # the status is enough; the body is unread
                        status = response.status_code
                outcome = "ok" if 200 <= status < 300 else "http_error"
            except (httpx.HTTPError, httpx.InvalidURL, TimeoutError):
                outcome = "network_error"
        self.stats.attempts[event, outcome] += 1
        if outcome != "ok":
            log.info(
                "webhook attempt failed",
                extra={"event": event, "url": url, "status": status, "retry": retry},
            )
        return outcome == "ok"

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
