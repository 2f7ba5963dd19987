"""Settings read once from the environment (and `.env`).

Each service subclasses the base it needs; every field is documented in `.env.example`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "dev-only-change-me-0123456789abcdef"  # placeholder, refused in production
JWT_SECRET_MIN_BYTES = 32  # RFC 7518: an HMAC key at least as long as the hash (SHA-256)


class BaseServiceSettings(BaseSettings):
    """What every process needs: where it runs and how it logs."""

    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore", frozen=True
    )

    environment: Literal["dev", "test", "production"] = "dev"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class DatabaseSettings(BaseServiceSettings):
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/app"
    # Connections per process, all opened on demand and kept (no overflow: see core.db).
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    db_statement_timeout_ms: int = Field(default=30_000, ge=0)
    # Test each pooled connection with a round trip before use. Off by default: it costs ~20 %
    # of a read endpoint's throughput, and SQLAlchemy already drops the whole pool when it sees
    # a disconnect, so a database restart costs one failed request per pool without it.
    db_pool_pre_ping: bool = False
    # false behind PgBouncer in transaction mode (or any pooler that hands a client's next
    # statement to another server connection): no named prepared statements are reused, and
    # each session runs as one transaction, the only span a transaction pooler keeps on one
    # server connection. Costs a BEGIN and a COMMIT per session; direct connections keep it on.
    db_prepared_statement_cache: bool = True


class AuthSettings(DatabaseSettings):
    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    access_token_ttl_seconds: int = Field(default=3600, ge=60)
    first_user_username: str | None = None
    first_user_password: SecretStr | None = None
    # POST /auth/token refuses (429) a username, or a client address, with this many failed
    # logins within the window, until the window ends. 0 turns that limit off.
    auth_max_failures_per_username: int = Field(default=5, ge=0, le=10_000)
    auth_max_failures_per_address: int = Field(default=50, ge=0, le=1_000_000)
    auth_failure_window_seconds: int = Field(default=900, ge=1, le=86_400)
    # How long each process trusts what it read of a user's standing (active, disabled,
    # deleted): a request with a token costs no database read within it. A disabled user keeps
    # access that long at most. 0: read it on every request.
    auth_user_cache_seconds: float = Field(default=30.0, ge=0, le=3600)

    @property
    def uses_placeholder_secret(self) -> bool:
        return self.jwt_secret.get_secret_value() == DEV_JWT_SECRET

    @model_validator(mode="after")
    def _refuse_weak_secret(self) -> AuthSettings:
        if self.environment == "dev":
            return self
        if self.uses_placeholder_secret and self.environment == "production":
            raise ValueError("JWT_SECRET must be set to a real secret in production")
        if len(self.jwt_secret.get_secret_value().encode()) < JWT_SECRET_MIN_BYTES:
            raise ValueError(
                f"JWT_SECRET must be at least {JWT_SECRET_MIN_BYTES} bytes outside development "
                "(ENVIRONMENT=dev); make one with `openssl rand -hex 32`"
            )
        return self


class BrokerSettings(BaseServiceSettings):
    broker_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    # Retries middleware: exponential backoff with jitter between these bounds. Keep max well
    # under RabbitMQ's consumer_timeout (30 min): delayed messages wait unacked in memory.
    retry_max_retries: int = Field(default=5, ge=0, le=100)
    retry_min_backoff_ms: int = Field(default=1_000, ge=1)
    retry_max_backoff_ms: int = Field(default=300_000, ge=1, le=1_500_000)
    actor_time_limit_ms: int = Field(default=600_000, ge=1_000)
    # Declare the queues as quorum queues (replicated over a RabbitMQ cluster; a message
    # survives the loss of a minority of nodes). Classic queues otherwise. Every process must
    # agree: RabbitMQ refuses to redeclare a queue as another type.
    broker_quorum_queues: bool = False

    @model_validator(mode="after")
    def _backoff_bounds(self) -> BrokerSettings:
        if self.retry_min_backoff_ms > self.retry_max_backoff_ms:
            raise ValueError("RETRY_MIN_BACKOFF_MS must not exceed RETRY_MAX_BACKOFF_MS")
        return self


class TracingSettings(BaseSettings):
    """The standard OTEL_* variables that decide whether traces are exported at all (read by
    core.tracing once at start-up); the SDK reads every other OTEL_* variable itself."""

    # The environment only (no .env): the SDK, which reads the rest, sees nothing else.
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore", frozen=True)

    otel_exporter_otlp_endpoint: str | None = None
    otel_exporter_otlp_traces_endpoint: str | None = None
    otel_traces_exporter: str | None = None
    otel_service_name: str | None = None
    otel_sdk_disabled: bool = False

    @property
    def enabled(self) -> bool:
        if self.otel_sdk_disabled or self.otel_traces_exporter == "none":
            return False
        return bool(
            self.otel_exporter_otlp_endpoint
            or self.otel_exporter_otlp_traces_endpoint
            or self.otel_traces_exporter
        )
