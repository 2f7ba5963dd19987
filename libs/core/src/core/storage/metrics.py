"""How long storing media takes and how many bytes went in, per backend."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

from core.tracing import span

PUT_DURATION = Histogram(
    "storage_put_duration_seconds",
    "Media stored, by backend and outcome (ok, error), with durations",
    ["backend", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PUT_BYTES = Counter("storage_put_bytes_total", "Bytes of media stored, by backend", ["backend"])


@contextmanager
def measured_put(backend: str, size: int) -> Iterator[None]:
    """Counts and times a put (and traces it, with tracing on)."""
    started = time.perf_counter()
    outcome = "error"
    try:
        with span("storage put", {"storage.backend": backend, "storage.size_bytes": size}):
            yield
        outcome = "ok"
        PUT_BYTES.labels(backend).inc(size)
    finally:
        PUT_DURATION.labels(backend, outcome).observe(time.perf_counter() - started)
