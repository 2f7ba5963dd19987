"""Which webhook events a prediction sends, and when: one background task per prediction.

The record's status comes from the clock (store.py), so the task sleeps until the moments the
status changes, or until a cancel wakes it:
- `start` at once, with the prediction as created (status `starting`);
- `logs` when processing starts (the seed line appears);
- at the end, `completed` (retried); or, when the filter leaves `completed` out, `output` for
  a success, else `logs` (unless canceled), since that is when those change.
`output` and `logs` go out at most once per 500 ms. Events of one prediction are sent in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from replicate_mock.store import TERMINAL, PredictionRecord
from replicate_mock.webhook_fields import Event
from replicate_mock.webhook_sender import WebhookSender, WebhookStats

log = logging.getLogger(__name__)

THROTTLE_SECONDS = 0.5  # Replicate's limit for output and logs webhooks
Render = Callable[[], dict[str, Any]]  # the prediction as GET /v1/predictions/{id} shows it now


def now() -> datetime:
    return datetime.now(UTC)


class Webhooks:
    def __init__(self, sender: WebhookSender) -> None:
        self.sender = sender
        self._tasks: set[asyncio.Task[None]] = set()
        self._wakes: dict[str, asyncio.Event] = {}

    @property
    def following(self) -> int:
        """Predictions whose webhooks are not all sent yet (retries included)."""
        return len(self._tasks)

    def follow(self, record: PredictionRecord, render: Render) -> None:
        """Send `record`'s webhooks in the background; the caller does not wait."""
        if record.webhook.url is None:
            return
        wake = self._wakes[record.id] = asyncio.Event()
        task = asyncio.create_task(
            self._run(record, record.webhook.url, render, wake), name=f"webhooks-{record.id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def changed(self, prediction_id: str) -> None:
        """The prediction was canceled: its task should look at it again now."""
        if (wake := self._wakes.get(prediction_id)) is not None:
            wake.set()

    def reset(self) -> None:
        """Drop every pending webhook and zero the counters (POST /_mock/reset)."""
        for task in self._tasks:
            task.cancel()
        self.sender.stats = WebhookStats()

    async def aclose(self) -> None:
        """Cancel what is pending and wait for it, then close the HTTP client (shutdown)."""
        tasks = list(self._tasks)
        if tasks:
            log.info("dropping pending webhooks", extra={"predictions": len(tasks)})
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.sender.aclose()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("webhook task crashed", exc_info=exc)

    async def _run(
        self, record: PredictionRecord, url: str, render: Render, wake: asyncio.Event
    ) -> None:
        events = record.webhook.events
        loop = asyncio.get_running_loop()
        last_intermediate = -THROTTLE_SECONDS

        async def send(event: Event) -> None:
            nonlocal last_intermediate
            if event in ("output", "logs"):
                if (gap := last_intermediate + THROTTLE_SECONDS - loop.time()) > 0:
                    await asyncio.sleep(gap)
                last_intermediate = loop.time()
            # Sorted keys, like real webhook bodies; otherwise the body GET gives.
            body = json.dumps(render(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            await self.sender.deliver(url, event, body.encode())

        try:
            if "start" in events:
                await send("start")
            await _until(record.started_at, wake)
            if record.status_at(now()) == "processing" and "logs" in events:
                await send("logs")
            # Only a cancel sets `wake`, and a canceled record is terminal: this cannot spin.
            while (status := record.status_at(now())) not in TERMINAL:
                await _until(record.completed_at, wake)
            if "completed" in events:
                await send("completed")
            elif status == "succeeded" and "output" in events:
                await send("output")
            elif status != "canceled" and "logs" in events:
                await send("logs")
        finally:
            self._wakes.pop(record.id, None)


async def _until(moment: datetime, wake: asyncio.Event) -> None:
    """Sleep until `moment` (a hair after: the status flips at it), or until woken."""
    delay = (moment - now()).total_seconds()
    if delay > 0 and not wake.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay + 0.001):
                await wake.wait()
