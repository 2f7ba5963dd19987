from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator

from core.replicate import ReplicateSettings
from core.settings import BrokerSettings, DatabaseSettings
from core.storage import StorageSettings

# What Replicate's `webhook_events_filter` takes.
WEBHOOK_EVENTS = ("start", "output", "logs", "completed")


class WorkerSettings(DatabaseSettings, BrokerSettings, StorageSettings, ReplicateSettings):
    # Tries per job (first one included) before a transient fault fails it for good.
    generation_max_attempts: int = Field(default=5, ge=1, le=50)
    # Delay between polls of a running prediction; grows x1.5 per poll up to the max.
    generation_poll_interval_seconds: float = Field(default=1.0, gt=0)
    generation_poll_max_interval_seconds: float = Field(default=10.0, gt=0)
    # Replicate -> gateway webhooks: the gateway's public base URL (as Replicate reaches it);
    # unset = off (polling only). With it, each prediction is created with
    # `<base>/webhooks/replicate?job_id=<job>` and these events, and polling remains only as a
    # fallback for webhooks that never come, every GENERATION_WEBHOOK_POLL_INTERVAL_SECONDS.
    replicate_webhook_base_url: str | None = None
    replicate_webhook_events_filter: str = "start,logs,completed"
    generation_webhook_poll_interval_seconds: float = Field(default=30.0, gt=0)
    # Hosts outputs may be downloaded from (comma-separated; "*.example.com" matches subdomains).
    generation_allowed_output_hosts: str = (
        "127.0.0.1,localhost,replicate.delivery,*.replicate.delivery"
    )
    generation_max_output_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    generation_download_timeout_seconds: float = Field(default=60.0, gt=0)
    # Worker threads in one `python -m generation_worker` process: how many steps run at once.
    # Steps are short (no thread waits on a prediction), so a few threads keep hundreds of
    # predictions in flight. Scale further with more processes.
    generation_threads: int = Field(default=16, ge=1, le=256)
    # Prometheus metrics at :PORT/metrics (jobs, queue wait and run times, Replicate calls,
    # retries, storage); 0 = off.
    generation_metrics_port: int = Field(default=9191, ge=0, le=65535)

    @field_validator("replicate_webhook_base_url")
    @classmethod
    def _webhook_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ValueError("must be an http(s) base URL such as https://api.example.com")
        return value.rstrip("/")

    @field_validator("replicate_webhook_events_filter")
    @classmethod
    def _webhook_events(cls, value: str) -> str:
        events = [e.strip() for e in value.split(",") if e.strip()]
        unknown = sorted(set(events) - set(WEBHOOK_EVENTS))
        if unknown or not events:
            raise ValueError(f"events must be some of {', '.join(WEBHOOK_EVENTS)}")
        return ",".join(events)

    @property
    def webhook_events(self) -> list[str]:
        return self.replicate_webhook_events_filter.split(",")

    @property
    def allowed_output_hosts(self) -> tuple[str, ...]:
        hosts = self.generation_allowed_output_hosts.split(",")
        return tuple(h.strip().lower() for h in hosts if h.strip())
