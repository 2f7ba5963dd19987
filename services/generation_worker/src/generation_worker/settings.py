from __future__ import annotations

from pydantic import Field

from core.replicate import ReplicateSettings
from core.settings import BrokerSettings, DatabaseSettings
from core.storage import StorageSettings


class WorkerSettings(DatabaseSettings, BrokerSettings, StorageSettings, ReplicateSettings):
    # Tries per job (first one included) before a transient fault fails it for good.
    generation_max_attempts: int = Field(default=5, ge=1, le=50)
    # Delay between polls of a running prediction; grows x1.5 per poll up to the max.
    generation_poll_interval_seconds: float = Field(default=1.0, gt=0)
    generation_poll_max_interval_seconds: float = Field(default=10.0, gt=0)
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

    @property
    def allowed_output_hosts(self) -> tuple[str, ...]:
        hosts = self.generation_allowed_output_hosts.split(",")
        return tuple(h.strip().lower() for h in hosts if h.strip())
