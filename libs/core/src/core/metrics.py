"""Prometheus metrics every service shares, and how a service exposes them.

Conventions: base units in the names (`_seconds`, `_bytes`), `_total` for counters, and only
bounded label values (a route template, never a path with an id in it; never a job id or a
prompt). The APIs serve `GET /metrics`; the workers, which have no HTTP app, serve it on a
port of their own (`serve_metrics`).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Histogram,
    generate_latest,
    start_http_server,
)

log = logging.getLogger(__name__)

HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP requests by method, route template and status code, with their duration",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"  # 404s for paths no route knows: one series, not one per path

metrics_router = APIRouter(tags=["health"])


@metrics_router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "The metrics"}},
)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def serve_metrics(port: int, *, service: str) -> None:
    """Serve `/metrics` on `port` from a daemon thread (0: off), for processes with no HTTP
    app of their own. The thread only reads the registry; it never touches the event loop."""
    if port == 0:
        return
    start_http_server(port)
    log.info("metrics on :%d/metrics", port, extra={"service": service})
