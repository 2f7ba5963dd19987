"""Predictions in memory, their status computed from timestamps (no task per prediction).

A record stores when it will start and finish; every read derives the status from the clock,
so thousands can be in flight at no cost. The store is bounded: the oldest are evicted.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from replicate_mock.inputs import FluxParams
from replicate_mock.webhook_fields import WebhookFields

ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # lowercase base32-like, as real ids look
TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})


def new_prediction_id() -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(26))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes:02d}:{rest:02d}"


def tqdm_line(done: int, total: int, step_seconds: float) -> str:
    """A progress line as cog-flux's denoising loop prints it (tqdm), e.g.
    ` 50%|█████     | 2/4 [00:01<00:01,  2.00it/s]`."""
    bar = ("█" * (10 * done // total)).ljust(10)
    if done == 0:
        return f"  0%|{bar}| 0/{total} [00:00<?, ?it/s]\n"
    rate = f"{1 / step_seconds:5.2f}it/s" if step_seconds > 0 else "?it/s"
    spent, left = _clock(done * step_seconds), _clock((total - done) * step_seconds)
    return f"{100 * done // total:3d}%|{bar}| {done}/{total} [{spent}<{left}, {rate}]\n"


@dataclass
class PredictionRecord:
    id: str
    seq: int
    model: str
    version: str
    input: dict[str, Any]
    params: FluxParams
    seed: int
    created_at: datetime
    started_at: datetime
    completed_at: datetime
    error: str | None = None  # set: the prediction ends failed with this message
    canceled_at: datetime | None = None
    webhook: WebhookFields = field(default_factory=WebhookFields)

    def status_at(self, now: datetime) -> str:
        if self.canceled_at is not None:
            return "canceled"
        if now < self.started_at:
            return "starting"
        if now < self.completed_at:
            return "processing"
        return "failed" if self.error is not None else "succeeded"

    def cancel(self, now: datetime) -> None:
        if self.status_at(now) not in TERMINAL:
            self.canceled_at = now

    def denoising_log(self, now: datetime) -> str:
        """The progress lines printed by `now`: one per denoising step, spread evenly over
        the processing time."""
        total = self.params.num_inference_steps
        span = (self.completed_at - self.started_at).total_seconds()
        elapsed = (min(now, self.completed_at) - self.started_at).total_seconds()
        done = total if span <= 0 else min(total, int(total * elapsed / span))
        return "".join(tqdm_line(step, total, span / total) for step in range(done + 1))

    def output_names(self) -> list[str]:
        ext = self.params.output_format
        return [f"out-{i}.{ext}" for i in range(self.params.num_outputs)]

    def to_json(
        self, now: datetime, *, api_base: str, files_base: str, status: str | None = None
    ) -> dict[str, Any]:
        """The prediction object as of `now`; `status` forces "starting" for expired waits."""
        status = status or self.status_at(now)
        body: dict[str, Any] = {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "input": self.input,
            "logs": "",
            "output": None,
            "data_removed": False,
            "error": None,
            "status": status,
            "source": "api",
            "created_at": iso(self.created_at),
            "urls": {
                "get": f"{api_base}/v1/predictions/{self.id}",
                "cancel": f"{api_base}/v1/predictions/{self.id}/cancel",
                "web": f"https://replicate.com/p/{self.id}",
            },
        }
        # Echoed as sent, like real webhook bodies show them (absent when not sent).
        if self.webhook.url is not None:
            body["webhook"] = self.webhook.url
        if self.webhook.events_filter is not None:
            body["webhook_events_filter"] = list(self.webhook.events_filter)
        seed_line = f"Using seed: {self.seed}\n"
        if status == "starting":
            return body
        if status == "canceled":
            assert self.canceled_at is not None
            ended = self.canceled_at
            body["logs"] = None
        else:
            ended = self.completed_at
        if self.started_at <= ended:
            body["started_at"] = iso(self.started_at)
            body["logs"] = seed_line if status != "canceled" else None
        if status == "processing":
            body["logs"] = seed_line + self.denoising_log(now)
            return body
        body["completed_at"] = iso(ended)
        body["metrics"] = {
            "predict_time": round(max(0.0, (ended - self.started_at).total_seconds()), 6),
            "total_time": round((ended - self.created_at).total_seconds(), 6),
        }
        if status == "failed":
            body["error"] = self.error
            body["logs"] = seed_line + f"{self.error}\n"
        elif status == "succeeded":
            n = self.params.num_outputs
            body["logs"] = (
                seed_line + self.denoising_log(ended) + f"Total safe images: {n} out of {n}\n"
            )
            body["output"] = [
                f"{files_base}/files/{self.id}/{name}" for name in self.output_names()
            ]
        return body


Direction = Literal["n", "p"]


def encode_cursor(direction: Direction, seq: int) -> str:
    return base64.urlsafe_b64encode(f"{direction}:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Direction, int] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        direction, _, seq = raw.partition(":")
        if direction == "n":
            return "n", int(seq)
        if direction == "p":
            return "p", int(seq)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return None


@dataclass
class Page:
    items: list[PredictionRecord]
    next_cursor: str | None
    previous_cursor: str | None


class PredictionStore:
    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self._items: OrderedDict[str, PredictionRecord] = OrderedDict()  # creation order
        self._seq = 0

    def __len__(self) -> int:
        return len(self._items)

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def add(self, record: PredictionRecord) -> None:
        self._items[record.id] = record
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    def get(self, prediction_id: str) -> PredictionRecord | None:
        return self._items.get(prediction_id)

    def clear(self) -> None:
        self._items.clear()

    def page(
        self,
        *,
        size: int,
        cursor: tuple[Direction, int] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> Page:
        """Newest first; a cursor ("n", seq) pages older than seq, ("p", seq) newer than it."""

        def wanted(r: PredictionRecord) -> bool:
            return (created_after is None or r.created_at > created_after) and (
                created_before is None or r.created_at < created_before
            )

        items: list[PredictionRecord] = []
        if cursor is None or cursor[0] == "n":
            bound = cursor[1] if cursor else None
            for r in reversed(self._items.values()):
                if bound is not None and r.seq >= bound:
                    continue
                if created_after is not None and r.created_at <= created_after:
                    break  # everything further is older still
                if wanted(r):
                    items.append(r)
                    if len(items) > size:
                        break
            more = len(items) > size
            items = items[:size]
            return Page(
                items,
                encode_cursor("n", items[-1].seq) if more else None,
                encode_cursor("p", items[0].seq) if cursor and items else None,
            )
        for r in self._items.values():  # oldest first, from just above the bound
            if r.seq <= cursor[1]:
                continue
            if wanted(r):
                items.append(r)
                if len(items) > size:
                    break
        more = len(items) > size
        items = items[:size][::-1]
        return Page(
            items,
            encode_cursor("n", items[-1].seq) if items else None,
            encode_cursor("p", items[0].seq) if more else None,
        )
