from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from core.replicate import ReplicateSettings
from core.settings import AuthSettings, BrokerSettings
from core.storage import StorageSettings
from core.webhooks import WebhookSecretSetting


class GatewaySettings(AuthSettings, BrokerSettings, StorageSettings, ReplicateSettings):
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8000, ge=1, le=65535)
    # Largest request body accepted (413 above it, before anything is parsed). A prompt is at
    # most 2,000 characters, so a real POST /generate stays far below the default.
    gateway_max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    gateway_default_model: str = "black-forest-labs/flux-schnell"
    # Models callers may ask for (comma-separated); all take flux-schnell-style params.
    gateway_allowed_models: str = "black-forest-labs/flux-schnell"
    # The outbox relay publishes accepted jobs at once; every interval it also sweeps for jobs
    # still unpublished after the grace time (a broker outage, a gateway's crash) and re-sends
    # queued or running jobs nobody has touched for the stale time (a message lost with a
    # broker).
    gateway_sweep_interval_seconds: float = Field(default=5.0, gt=0)
    gateway_unpublished_grace_seconds: float = Field(default=5.0, ge=0)
    gateway_stale_job_seconds: float = Field(default=900.0, gt=0)
    # A low or normal job still queued this long after its message was published is sent
    # again at high priority: a steady stream of high jobs never starves the others.
    gateway_priority_aging_seconds: float = Field(default=300.0, gt=0)
    # POST /generate: creates per caller per minute, shared by every replica (429 with
    # Retry-After above it). Replicate's own limit is 600; 0 turns the limit off.
    gateway_rate_limit_per_minute: int = Field(default=600, ge=0)
    # Generated media are deleted from storage this long after they were stored (their status
    # then says `expired`, GET /media answers 410); 0 keeps them forever.
    gateway_media_ttl_seconds: float = Field(default=0, ge=0)
    # GET /jobs/{id}/events: a comment line this often while nothing happens, so proxies and
    # clients see a live connection (and a vanished client is noticed).
    # The one LISTEN connection for live status needs a session of its own: behind PgBouncer in
    # transaction mode, point this past the pooler (or at a session-mode pool). Empty: the
    # DATABASE_URL.
    gateway_listen_database_url: str | None = None
    gateway_events_keepalive_seconds: float = Field(default=15.0, gt=0, le=300)
    # GET /media: redirect to a presigned S3 URL instead of streaming through the gateway.
    gateway_media_redirect: bool = False
    # Verifies Replicate's webhooks (POST /webhooks/replicate): `whsec_<base64>`. None: asked
    # of Replicate once (GET /v1/webhooks/default/secret, with REPLICATE_API_TOKEN) and kept.
    replicate_webhook_secret: WebhookSecretSetting | None = None

    # How callers reach this gateway: the base of the media URLs in webhook bodies (API answers
    # use the host each request came in on).
    gateway_public_url: str = "http://127.0.0.1:8000"
    # Caller webhooks. true: plain http and hosts that are (or resolve to) loopback, private,
    # link-local or other non-public addresses are allowed too (development and tests only).
    gateway_webhook_allow_private: bool = False
    # POST /generate resolves the webhook's host (to refuse private addresses) within this.
    gateway_webhook_resolve_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    # After a secret rotation, deliveries carry a signature with the old key too, this long.
    gateway_webhook_rotation_grace_seconds: int = Field(default=86_400, ge=0, le=30 * 86_400)
    # One attempt, all included (resolving, connecting, sending, the status line).
    gateway_webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # Attempts in flight at once per gateway process.
    gateway_webhook_concurrency: int = Field(default=32, ge=1, le=1000)
    # How often the sender looks for due deliveries (the worker's transitions are in another
    # process; a cancel in this one wakes it at once).
    gateway_webhook_poll_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    # `completed` is tried this many times; the n-th retry waits min(max, min * 2^(n-1))
    # seconds, +-20 % jitter. `start` is sent once.
    gateway_webhook_max_attempts: int = Field(default=14, ge=1, le=100)
    gateway_webhook_retry_min_seconds: float = Field(default=1.0, gt=0)
    gateway_webhook_retry_max_seconds: float = Field(default=900.0, gt=0)

    @field_validator("gateway_public_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _retry_bounds(self) -> GatewaySettings:
        if self.gateway_webhook_retry_min_seconds > self.gateway_webhook_retry_max_seconds:
            raise ValueError(
                "GATEWAY_WEBHOOK_RETRY_MIN_SECONDS must not exceed "
                "GATEWAY_WEBHOOK_RETRY_MAX_SECONDS"
            )
        return self

    @property
    def public_base_url(self) -> str:
        """GATEWAY_PUBLIC_URL ending in one slash, as a request's base_url does."""
        return self.gateway_public_url.rstrip("/") + "/"

    @property
    def allowed_models(self) -> frozenset[str]:
        return frozenset(m.strip() for m in self.gateway_allowed_models.split(",") if m.strip())
