"""Settings: read from the environment and `.env`, validated once, refused when unsafe."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.auth import warn_if_placeholder_secret
from core.settings import (
    DEV_JWT_SECRET,
    AuthSettings,
    BaseServiceSettings,
    BrokerSettings,
    DatabaseSettings,
)

REAL_SECRET = "a-real-secret-for-tests-0123456789abcdef"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No stray settings: an empty working directory (no .env) and none of our variables set."""
    names: set[str] = set()
    for cls in (AuthSettings, BrokerSettings):
        names.update(cls.model_fields)
    for name in names:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults_without_env() -> None:
    settings = BaseServiceSettings()
    assert settings.environment == "dev"
    assert settings.log_level == "INFO"


def test_reads_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://u@db:5432/x")
    monkeypatch.setenv("DB_POOL_SIZE", "3")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    settings = DatabaseSettings()
    assert settings.database_url == "postgresql+asyncpg://u@db:5432/x"
    assert settings.db_pool_size == 3
    assert settings.log_level == "DEBUG"


def test_reads_dotenv_and_env_wins(monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> None:
    (clean_env / ".env").write_text(
        "RETRY_MAX_RETRIES=7\nRETRY_MIN_BACKOFF_MS=250\nBROKER_URL=amqp://from-dotenv//\n"
        "UNKNOWN_KEY=ignored\n"
    )
    monkeypatch.setenv("BROKER_URL", "amqp://from-env//")
    settings = BrokerSettings()
    assert settings.retry_max_retries == 7
    assert settings.retry_min_backoff_ms == 250
    assert settings.broker_url == "amqp://from-env//"


def test_empty_env_values_are_ignored(monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> None:
    monkeypatch.setenv("LOG_LEVEL", "")
    monkeypatch.setenv("RETRY_MAX_RETRIES", "")
    (clean_env / ".env").write_text("RETRY_MAX_RETRIES=9\n")
    settings = BrokerSettings()
    assert settings.log_level == "INFO"  # empty -> default, not a validation error
    assert settings.retry_max_retries == 9  # empty env var does not hide the .env value


def test_invalid_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    with pytest.raises(ValidationError, match="log_level"):
        BaseServiceSettings()


def test_settings_are_frozen() -> None:
    settings = BaseServiceSettings()
    with pytest.raises(ValidationError):
        settings.log_level = "DEBUG"  # type: ignore[misc]


def test_placeholder_jwt_secret_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="JWT_SECRET must be set"):
        AuthSettings()


def test_placeholder_jwt_secret_is_logged_not_warned_in_dev(
    caplog: pytest.LogCaptureFixture, recwarn: pytest.WarningsRecorder
) -> None:
    settings = AuthSettings()
    assert settings.jwt_secret.get_secret_value() == DEV_JWT_SECRET
    assert settings.uses_placeholder_secret
    assert not recwarn.list  # a raw Python warning would break the JSON log lines

    with caplog.at_level(logging.WARNING):
        warn_if_placeholder_secret(settings)
    assert "JWT_SECRET is the development placeholder" in caplog.text


@pytest.mark.parametrize("environment", ["test", "production"])
def test_short_jwt_secret_refused_outside_dev(
    monkeypatch: pytest.MonkeyPatch, environment: str
) -> None:
    monkeypatch.setenv("ENVIRONMENT", environment)
    monkeypatch.setenv("JWT_SECRET", "x" * 31)
    with pytest.raises(ValidationError, match="JWT_SECRET must be at least 32 bytes"):
        AuthSettings()
    monkeypatch.setenv("JWT_SECRET", "x" * 32)
    assert AuthSettings().jwt_secret.get_secret_value() == "x" * 32


def test_short_jwt_secret_allowed_in_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", "short")
    assert AuthSettings().jwt_secret.get_secret_value() == "short"


def test_real_jwt_secret_accepted_in_production(
    monkeypatch: pytest.MonkeyPatch, recwarn: pytest.WarningsRecorder
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("JWT_SECRET", REAL_SECRET)
    settings = AuthSettings()
    assert settings.jwt_secret.get_secret_value() == REAL_SECRET
    assert REAL_SECRET not in repr(settings)  # SecretStr keeps it out of logs
    assert not [w for w in recwarn if "JWT_SECRET" in str(w.message)]


def test_min_backoff_above_max_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRY_MIN_BACKOFF_MS", "5000")
    monkeypatch.setenv("RETRY_MAX_BACKOFF_MS", "4000")
    with pytest.raises(
        ValidationError, match="RETRY_MIN_BACKOFF_MS must not exceed RETRY_MAX_BACKOFF_MS"
    ):
        BrokerSettings()


def test_max_backoff_must_stay_under_rabbitmq_consumer_timeout() -> None:
    thirty_minutes_ms = 30 * 60 * 1000
    with pytest.raises(ValidationError, match="retry_max_backoff_ms"):
        BrokerSettings(retry_max_backoff_ms=thirty_minutes_ms)
    assert BrokerSettings(retry_max_backoff_ms=1_500_000).retry_max_backoff_ms == 1_500_000


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("retry_max_retries", -1),
        ("retry_max_retries", 101),
        ("retry_min_backoff_ms", 0),
        ("actor_time_limit_ms", 999),
    ],
)
def test_broker_bounds(field: str, value: int) -> None:
    with pytest.raises(ValidationError, match=field):
        BrokerSettings.model_validate({field: value})


def test_database_bounds() -> None:
    with pytest.raises(ValidationError, match="db_pool_size"):
        DatabaseSettings(db_pool_size=0)
    with pytest.raises(ValidationError, match="access_token_ttl_seconds"):
        AuthSettings(jwt_secret=REAL_SECRET, access_token_ttl_seconds=10)
