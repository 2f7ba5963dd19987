"""Caller webhooks: POST each recorded delivery to its URL, signed, retried, recorded.

Deliveries are rows the database inserts with the job transitions that cause them (see
core.webhook_deliveries). Every gateway process runs one sender, which:

- takes due deliveries with a lease (one short statement; no row lock and no database
  connection is held during HTTP), at most as many as it has free slots
  (GATEWAY_WEBHOOK_CONCURRENCY), so several gateways share the work and the deliveries of a
  gateway that died are taken again when their lease ends;
- POSTs the job as GET /status showed it when the event happened, with Standard Webhooks
  headers: the same `webhook-id` on every attempt, a fresh timestamp, one signature per key of
  the caller (two during a rotation's grace period);
- resolves the URL's host itself, checks every address (gateway.webhook_targets) and connects
  to a checked address, sending the URL's own host name in the Host header and as the TLS
  server name (httpx's `sni_hostname` request extension), so the certificate is verified for
  that name; a name that now resolves to a private address gets nothing (DNS rebinding). No
  redirect is followed, no proxy from the environment is used, and no connection is kept for
  another request (a kept connection, keyed by address, could carry another host's request);
- bounds each attempt (resolve, connect, send, status line) by GATEWAY_WEBHOOK_TIMEOUT_SECONDS
  and never reads the answer's body;
- records the attempt (status code or error, duration, time) in the statement that schedules
  the next try or ends the delivery. `completed` is tried up to GATEWAY_WEBHOOK_MAX_ATTEMPTS
  times with exponential backoff and jitter; `start` once.

It looks for due deliveries every GATEWAY_WEBHOOK_POLL_INTERVAL_SECONDS (most transitions
happen in the worker's process), at once when woken (a cancel in this process), and again as
soon as a slot frees up while there is a backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from datetime import timedelta

import httpx
from prometheus_client import Counter

from core import webhook_deliveries
from core.aio import raise_if_cancelling
from core.db import Database
from core.webhook_deliveries import AttemptOutcome, ClaimedDelivery
from core.webhooks import generate_secret, sign_headers
from gateway import webhook_targets
from gateway.settings import GatewaySettings
from gateway.views import job_public
from gateway.webhook_targets import (
    ResolutionUnavailable,
    Resolver,
    WebhookTarget,
    WebhookUrlRejected,
    system_resolver,
)

log = logging.getLogger(__name__)

USER_AGENT = "media-gateway-webhooks/0.1"
# A lease outlasts an attempt by this much: another sender takes the delivery only once the
# one that claimed it must have finished (or died).
LEASE_MARGIN = timedelta(seconds=30)
ATTEMPTS = Counter(
    "webhook_delivery_attempts_total",
    "Caller webhook attempts by event, outcome of the attempt (ok, error) and what the "
    "delivery became (delivered, pending: to be retried, failed: given up, superseded)",
    ["event", "outcome", "delivery"],
)
JITTER = 0.2  # +-20 % on each retry delay, so deliveries that failed together spread out


def retry_delay(attempt: int, settings: GatewaySettings) -> timedelta:
    """How long after failed attempt number `attempt` (1 for the first) the next one is due."""
    base = settings.gateway_webhook_retry_min_seconds * 2 ** min(attempt - 1, 62)
    delay = min(base, settings.gateway_webhook_retry_max_seconds)
    return timedelta(seconds=delay * random.uniform(1 - JITTER, 1 + JITTER))


class WebhookSender:
    def __init__(
        self,
        db: Database,
        settings: GatewaySettings,
        *,
        resolver: Resolver = system_resolver,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._db = db
        self._settings = settings
        self._resolve = resolver
        self._base_url = settings.public_base_url
        self._timeout = settings.gateway_webhook_timeout_seconds
        self._lease = timedelta(seconds=self._timeout) + LEASE_MARGIN
        self._slots = settings.gateway_webhook_concurrency
        self._in_flight = 0
        self._backlog = False  # the last claim filled every free slot: more may be due
        self._wake = asyncio.Event()
        self._http = httpx.AsyncClient(
            timeout=self._timeout,
            follow_redirects=False,
            trust_env=False,
            verify=verify,
            limits=httpx.Limits(max_connections=self._slots, max_keepalive_connections=0),
        )

    def wake(self) -> None:
        """A delivery may have become due in this process: look now, not at the next poll."""
        self._wake.set()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def run(self) -> None:
        """Until cancelled. Attempts under way when it is cancelled are abandoned; their
        deliveries are taken again (by any gateway) when the lease ends."""
        async with asyncio.TaskGroup() as attempts:
            while True:
                self._wake.clear()
                try:
                    for delivery in await self._claim():
                        attempts.create_task(self._attempt_in_slot(delivery))
                except Exception as exc:  # the database away, most likely: next round
                    log.warning("webhook claim failed: %s: %s", type(exc).__name__, exc)
                raise_if_cancelling()  # see core.aio: never wait again once asked to stop
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(
                        self._settings.gateway_webhook_poll_interval_seconds
                    ):
                        await self._wake.wait()

    async def send_due(self) -> int:
        """One round: claim what is due (up to the free slots) and attempt it all; how many."""
        claimed = await self._claim()
        async with asyncio.TaskGroup() as attempts:
            for delivery in claimed:
                attempts.create_task(self._attempt_in_slot(delivery))
        return len(claimed)

    async def _claim(self) -> list[ClaimedDelivery]:
        free = self._slots - self._in_flight
        if free <= 0:
            return []
        async with self._db.session() as session:
            claimed = await webhook_deliveries.claim_due(session, self._lease, free)
        self._in_flight += len(claimed)
        self._backlog = len(claimed) == free
        return claimed

    async def _attempt_in_slot(self, delivery: ClaimedDelivery) -> None:
        try:
            await self.attempt(delivery)
        except Exception as exc:  # not recorded (the database away?): retried after the lease
            log.warning(
                "webhook attempt not recorded: %s: %s",
                type(exc).__name__,
                exc,
                extra={"webhook_id": delivery.webhook_id},
            )
        finally:
            self._in_flight -= 1
            if self._backlog:
                self._wake.set()

    async def attempt(self, delivery: ClaimedDelivery) -> None:
        """POST `delivery` once and record what happened."""
        started = time.monotonic()
        status_code: int | None
        error: str | None
        try:
            body, keys = await self._payload(delivery)
        except Exception as exc:  # a bug; recorded, so it cannot be retried forever unseen
            log.exception("webhook payload failed", extra={"webhook_id": delivery.webhook_id})
            status_code, error = None, f"internal error: {type(exc).__name__}"
        else:
            headers = {
                **sign_headers(keys, body, msg_id=delivery.webhook_id),
                "content-type": "application/json",
                "user-agent": USER_AGENT,
            }
            status_code, error = await self._post(delivery.url, body, headers)
        outcome = AttemptOutcome(status_code, error, round((time.monotonic() - started) * 1000))
        number = delivery.attempts + 1
        max_attempts = self._settings.gateway_webhook_max_attempts
        async with self._db.session() as session:
            status = await webhook_deliveries.record_attempt(
                session,
                delivery.id,
                outcome,
                max_attempts=max_attempts if delivery.event == "completed" else 1,
                retry_in=retry_delay(number, self._settings),
            )
        # pending: it failed and will be tried again; delivered; failed: given up; superseded:
        # another sender recorded it first (its lease had run out)
        became = status or "superseded"
        ATTEMPTS.labels(delivery.event, "ok" if error is None else "error", became).inc()
        log.info(
            "webhook attempt",
            extra={
                "webhook_id": delivery.webhook_id,
                "event": delivery.event,
                "attempt": number,
                "status_code": status_code,
                "error": error,
                "delivery_status": status,
            },
        )

    async def _payload(self, delivery: ClaimedDelivery) -> tuple[bytes, list[str]]:
        job, media = delivery.job_and_media()
        body = job_public(self._base_url, job, media).model_dump_json().encode()
        keys = delivery.keys
        if not keys:  # the caller has not asked for their secret yet: it is made now
            async with self._db.session() as session:
                keys = [
                    await webhook_deliveries.secret(session, delivery.owner_id, generate_secret())
                ]
        return body, keys

    async def _post(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int | None, str | None]:
        """The status code (None: no answer) and the error (None: delivered)."""
        allow_private = self._settings.gateway_webhook_allow_private
        try:
            # A hard bound on the whole attempt: httpx's timeouts are per operation.
            async with asyncio.timeout(self._timeout):
                target = webhook_targets.parse(url, allow_private=allow_private)
                found = await webhook_targets.addresses(
                    target, allow_private=allow_private, resolver=self._resolve
                )
                status = await self._post_to(target, found, body, headers)
        except WebhookUrlRejected as exc:
            return None, f"refused: {exc}"
        except ResolutionUnavailable as exc:
            return None, f"DNS: {exc}"
        except TimeoutError:
            return None, f"no answer within {self._timeout:g} s"
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if 200 <= status < 300:
            return status, None
        if 300 <= status < 400:
            return status, f"answered {status}; redirects are not followed"
        return status, f"answered {status}"

    async def _post_to(
        self,
        target: WebhookTarget,
        addresses: list[webhook_targets.IPAddress],
        body: bytes,
        headers: dict[str, str],
    ) -> int:
        """POST to the first address that accepts a connection; its status code."""
        extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
        headers = {**headers, "host": target.host_header}
        failure: httpx.ConnectError | None = None
        for address in addresses:
            request = self._http.stream(
                "POST", target.at(address), content=body, headers=headers, extensions=extensions
            )
            try:
                async with request as response:  # the status is enough; the body is unread
                    return response.status_code
            except httpx.ConnectError as exc:
                failure = exc
        assert failure is not None  # addresses() never returns an empty list
        raise failure
