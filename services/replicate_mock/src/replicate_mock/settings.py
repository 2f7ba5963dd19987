"""Mock settings, all prefixed REPLICATE_MOCK_ so one .env serves every service."""

from __future__ import annotations

from pydantic import Field, field_validator

from core.settings import BaseServiceSettings
from core.webhooks import WebhookSecretSetting


class MockSettings(BaseServiceSettings):
    replicate_mock_host: str = "127.0.0.1"
    replicate_mock_port: int = Field(default=8002, ge=1, le=65535)
    # Comma-separated bearer tokens the mock accepts.
    replicate_mock_api_tokens: str = "mock-token"
    # Origin put in output file URLs; None uses the origin each request came in on.
    replicate_mock_public_url: str | None = None
    # False: output files are public, like replicate.delivery links; True: bearer token needed.
    replicate_mock_files_require_auth: bool = False
    # Official models served; each gets a fixed 64-hex version id (sha256 of its name).
    replicate_mock_models: str = "black-forest-labs/flux-schnell,black-forest-labs/flux-dev"
    # Time from create to completion; processing starts after a quarter of it.
    replicate_mock_latency_seconds: float = Field(default=2.0, ge=0)
    replicate_mock_page_size: int = Field(default=100, ge=1, le=1000)
    replicate_mock_max_predictions: int = Field(default=100_000, ge=1)
    replicate_mock_image_cache_size: int = Field(default=64, ge=0)
    # Fault injection, per API call (fail and 500-after-create apply to creates only).
    replicate_mock_fault_429_rate: float = Field(default=0.0, ge=0, le=1)
    replicate_mock_retry_after_seconds: int = Field(default=1, ge=0)
    replicate_mock_fault_500_rate: float = Field(default=0.0, ge=0, le=1)
    replicate_mock_fault_500_after_create_rate: float = Field(default=0.0, ge=0, le=1)
    replicate_mock_fault_slow_rate: float = Field(default=0.0, ge=0, le=1)
    replicate_mock_slow_seconds: float = Field(default=5.0, ge=0)
    replicate_mock_fault_fail_rate: float = Field(default=0.0, ge=0, le=1)
    # Seed for the fault dice, for reproducible runs; None draws from the OS.
    replicate_mock_fault_seed: int | None = None
    # Signs webhook deliveries (`whsec_<base64>`); None: a new one at each start, which
    # GET /v1/webhooks/default/secret tells.
    replicate_mock_webhook_secret: WebhookSecretSetting | None = None
    # Seconds before each retry of a failed `completed` webhook (their count is the number of
    # retries): the default ends about a minute after completion, like Replicate.
    replicate_mock_webhook_retry_delays_seconds: str = "1,2,4,8,16,32"
    # Per attempt: connect, send and read the status line within this time, or it failed.
    replicate_mock_webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Webhook requests in flight at once; more wait their turn.
    replicate_mock_webhook_concurrency: int = Field(default=16, ge=1, le=1000)

    @field_validator("replicate_mock_webhook_retry_delays_seconds")
    @classmethod
    def _delays_parse(cls, value: str) -> str:
        _parse_delays(value)
        return value

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        return _parse_delays(self.replicate_mock_webhook_retry_delays_seconds)

    @property
    def api_tokens(self) -> frozenset[str]:
        return frozenset(t.strip() for t in self.replicate_mock_api_tokens.split(",") if t.strip())

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(m.strip() for m in self.replicate_mock_models.split(",") if m.strip())


def _parse_delays(value: str) -> tuple[float, ...]:
    """Parse "1,2,4" to (1.0, 2.0, 4.0); ValueError for anything but seconds in 0..3600."""
    delays = tuple(float(d) for d in value.split(",") if d.strip())
    if any(not 0 <= d <= 3600 for d in delays):  # also refuses nan
        raise ValueError("retry delays must be seconds between 0 and 3600")
    return delays
