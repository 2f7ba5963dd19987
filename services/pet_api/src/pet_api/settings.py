"""pet_api settings: the shared auth/database ones plus where the API listens."""

from __future__ import annotations

from pydantic import Field

from core.settings import AuthSettings


class PetApiSettings(AuthSettings):
    pet_api_host: str = "127.0.0.1"
    pet_api_port: int = Field(default=8001, ge=1, le=65535)
    # Largest request body accepted (413 above it, before anything is parsed).
    pet_api_max_body_bytes: int = Field(default=16 * 1024, ge=1024, le=16 * 1024 * 1024)
    # When true, GET /pets and GET /pets/{id} need a bearer token too; writes always do.
    pet_api_reads_require_auth: bool = False
