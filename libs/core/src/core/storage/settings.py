"""Storage settings (STORAGE_* and S3_* env vars); the backend factory is in `factory`."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from core.settings import BaseServiceSettings
from core.storage.base import MAX_PRESIGN_SECONDS


class StorageSettings(BaseServiceSettings):
    storage_backend: Literal["local", "s3"] = "local"
    storage_local_root: str = "./data/media"
    s3_endpoint: str = "127.0.0.1:9000"  # host:port, no scheme
    s3_access_key: str = "minioadmin"
    s3_secret_key: SecretStr = SecretStr("minioadmin")
    s3_bucket: str = Field(default="media", min_length=3, max_length=63)
    s3_region: str = "us-east-1"
    s3_secure: bool = False
    s3_presign_expiry_seconds: int = Field(default=900, ge=1, le=MAX_PRESIGN_SECONDS)
    # Base URL presigned links are signed for, when clients reach S3 under another name than
    # the services do (compose: services use minio:9000, browsers http://localhost:9000).
    s3_public_url: str | None = None
    s3_timeout_seconds: float = Field(default=30.0, gt=0)
    s3_max_connections: int = Field(default=20, ge=1, le=1000)

    @property
    def presigned_origin(self) -> str:
        """Where presigned URLs point (scheme://host:port): what a browser fetches them from."""
        if self.s3_public_url:
            parts = urlsplit(self.s3_public_url)
            return f"{parts.scheme}://{parts.netloc}"
        return f"{'https' if self.s3_secure else 'http'}://{self.s3_endpoint}"

    @field_validator("s3_endpoint")
    @classmethod
    def _endpoint_without_scheme(cls, value: str) -> str:
        if "://" in value or "/" in value:
            raise ValueError("S3_ENDPOINT is host:port without scheme or path (see S3_SECURE)")
        return value
