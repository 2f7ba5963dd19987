"""How to reach Replicate: the local mock by default, api.replicate.com with a real token."""

from __future__ import annotations

from pydantic import Field, SecretStr

from core.settings import BaseServiceSettings


class ReplicateSettings(BaseServiceSettings):
    # No /v1 suffix: every path the client sends already starts with /v1.
    replicate_base_url: str = "http://127.0.0.1:8002"
    replicate_api_token: SecretStr = SecretStr("mock-token")
    replicate_connect_timeout_seconds: float = Field(default=10.0, gt=0)
    # Read, write and pool timeout of every call (a `Prefer: wait` create gets wait + margin).
    replicate_timeout_seconds: float = Field(default=30.0, gt=0)
    # Hold create calls up to this long (`Prefer: wait=N`, 1..60); None creates asynchronously.
    replicate_wait_seconds: int | None = Field(default=None, ge=1, le=60)
