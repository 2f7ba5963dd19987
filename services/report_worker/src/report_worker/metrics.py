"""What an alert needs to know about the reports: did the last one print, how long it took,
how many rows it had, and when the last good one was (alert when that grows old)."""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge

TICKS = Counter(
    "report_ticks_total",
    "Report ticks by outcome: printed here, skipped (another replica printed it) or failed",
    ["outcome"],
)
LAST_DURATION = Gauge("report_last_duration_seconds", "How long the last printed report took")
LAST_ROWS = Gauge("report_last_rows", "Pets in the last printed report")
LAST_SUCCESS = Gauge(
    "report_last_success_timestamp_seconds", "Unix time the last report finished printing"
)


def printed(rows: int, seconds: float) -> None:
    TICKS.labels("printed").inc()
    LAST_DURATION.set(seconds)
    LAST_ROWS.set(rows)
    LAST_SUCCESS.set(time.time())
