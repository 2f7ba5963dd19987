""".env.example documents every setting the services read, nothing else, with values that work."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from gateway.settings import GatewaySettings
from generation_worker.settings import WorkerSettings
from pet_api.settings import PetApiSettings
from replicate_mock.settings import MockSettings
from report_worker.settings import ReportWorkerSettings

ENV_EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"
SERVICES: list[type[BaseSettings]] = [
    GatewaySettings,
    WorkerSettings,
    PetApiSettings,
    ReportWorkerSettings,
    MockSettings,
]
# Read by compose.yaml for ${...} interpolation, not by the services.
COMPOSE_ONLY = {
    "POSTGRES_PASSWORD",
    "RABBITMQ_USER",
    "RABBITMQ_PASSWORD",
    "MINIO_ROOT_USER",
    "MINIO_ROOT_PASSWORD",
    "REPLICATE_MOCK_TOKEN",
    "COMPOSE_REPLICATE_BASE_URL",
    "COMPOSE_REPLICATE_API_TOKEN",
}


def documented() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"not KEY=value: {line!r}"
            assert key not in values, f"{key} documented twice"
            values[key] = value
    return values


def read_by(settings: type[BaseSettings]) -> set[str]:
    return {name.upper() for name in settings.model_fields}


def test_every_setting_a_service_reads_is_documented() -> None:
    keys = set(documented())
    for settings in SERVICES:
        missing = read_by(settings) - keys
        assert not missing, f"{settings.__name__} reads undocumented settings: {sorted(missing)}"


def test_every_documented_setting_is_read_by_something() -> None:
    read = set().union(*(read_by(s) for s in SERVICES)) | COMPOSE_ONLY
    unknown = set(documented()) - read
    assert not unknown, f".env.example documents settings nobody reads: {sorted(unknown)}"


@pytest.mark.parametrize("settings", SERVICES, ids=lambda s: s.__name__)
def test_documented_values_are_valid(
    settings: type[BaseSettings], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for key, value in documented().items():
        monkeypatch.setenv(key, value)
    settings()  # raises if a documented value does not validate
