"""The create body's `webhook` and `webhook_events_filter`, validated like Replicate does."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from replicate_mock.inputs import json_type

Event = Literal["start", "output", "logs", "completed"]
EVENTS: tuple[Event, ...] = get_args(Event)
# Replicate's docs disagree on the default (new output and completion, or every event); the
# mock sends every event, so a client that relies on the narrower default still sees its own.
DEFAULT_EVENTS: frozenset[Event] = frozenset(EVENTS)
MAX_URL_LENGTH = 2048


@dataclass(frozen=True)
class WebhookFields:
    url: str | None = None
    events_filter: tuple[Event, ...] | None = None  # as sent (order and repeats kept)

    @property
    def events(self) -> frozenset[Event]:
        # An empty filter counts as none given, as Go-style `len(filter) == 0` checks read it.
        return frozenset(self.events_filter) if self.events_filter else DEFAULT_EVENTS


def _problem(kind: str, field: str, description: str) -> dict[str, str]:
    return {"type": kind, "field": field, "description": description}


def _url_problem(value: Any) -> dict[str, str] | None:
    if not isinstance(value, str):
        return _problem(
            "invalid_type", "webhook", f"Invalid type. Expected: string, given: {json_type(value)}"
        )
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. a malformed IPv6 host or port
        ok = False
    if not ok or len(value) > MAX_URL_LENGTH:
        return _problem("format", "webhook", "Does not match format 'uri'")
    return None


def _filter_problems(value: Any) -> list[dict[str, str]]:
    field = "webhook_events_filter"
    if not isinstance(value, list):
        return [
            _problem(
                "invalid_type", field, f"Invalid type. Expected: array, given: {json_type(value)}"
            )
        ]
    listed = ", ".join(f'"{e}"' for e in EVENTS)
    return [
        _problem("enum", f"{field}.{i}", f"{field}.{i} must be one of the following: {listed}")
        for i, item in enumerate(value)
        if item not in EVENTS  # a non-string is not an event either
    ]


def parse_webhook_fields(body: Mapping[str, Any]) -> tuple[WebhookFields, list[dict[str, str]]]:
    """The fields (absent ones None) and any `invalid_fields` entries for a 422."""
    problems: list[dict[str, str]] = []
    url, events_filter = body.get("webhook"), body.get("webhook_events_filter")
    if "webhook" in body and (problem := _url_problem(url)) is not None:
        problems.append(problem)
    if "webhook_events_filter" in body:
        problems += _filter_problems(events_filter)
    if problems:
        return WebhookFields(), problems
    return WebhookFields(url, None if events_filter is None else tuple(events_filter)), []
