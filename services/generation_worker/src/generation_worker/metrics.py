"""The generation worker's Prometheus metrics (served on GENERATION_METRICS_PORT).

One process, many threads (Dramatiq's consumers and workers, the event loop that runs the
steps): prometheus_client's metrics are thread-safe, and the worker never forks, so every
thread counts into the one registry the metrics server reads. Labels are bounded: a status,
a reason or an exception class, never a job id.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_DURATIONS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)

JOBS_FINISHED = Counter(
    "generation_jobs_finished_total",
    "Jobs this worker finished, by final status and reason (ok, or why it failed)",
    ["status", "reason"],
)
QUEUE_WAIT = Histogram(
    "generation_queue_wait_seconds",
    "From a job's creation to the start of its first attempt",
    buckets=_DURATIONS,
)
RUN_TIME = Histogram(
    "generation_run_seconds",
    "From a job's first attempt to its end (succeeded or failed)",
    ["status"],
    buckets=_DURATIONS,
)
RETRIES = Counter(
    "generation_retries_total",
    "Attempts that failed transiently and will be tried again, by cause",
    ["cause"],
)
JOBS = Gauge(
    "generation_jobs",
    "Unfinished jobs by status, as the database counted them last (running: predictions in "
    "flight); refreshed every 15 s by each worker",
    ["status"],
)
