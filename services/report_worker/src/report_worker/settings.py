"""Report worker settings (REPORT_* env vars; the database ones come from DatabaseSettings)."""

from __future__ import annotations

from pydantic import Field

from core.settings import DatabaseSettings

# "pets" in ASCII: a recognisable key in pg_locks, and it fits Postgres' int4 lock key.
DEFAULT_LOCK_KEY = 0x70657473


class ReportWorkerSettings(DatabaseSettings):
    report_interval_seconds: int = Field(default=60, ge=1, le=86_400)
    # Rows fetched per round trip from the server-side cursor: bounds the worker's memory (about
    # 3 KB a row, as the next page is read while the current one is rendered).
    report_page_size: int = Field(default=1000, ge=1, le=100_000)
    # First key of the (key, tick) advisory lock that elects one printing replica per tick.
    report_lock_key: int = Field(default=DEFAULT_LOCK_KEY, ge=-(2**31), le=2**31 - 1)
    # Prometheus metrics at :PORT/metrics (last report's duration, rows, time); 0 = off.
    report_metrics_port: int = Field(default=9192, ge=0, le=65535)
