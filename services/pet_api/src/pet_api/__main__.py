"""`python -m pet_api`: serve the API with uvicorn on PET_API_HOST:PET_API_PORT."""

from __future__ import annotations

import uvicorn

from core.logging import configure_logging, load_settings
from pet_api.app import SERVICE, create_app
from pet_api.settings import PetApiSettings


def main() -> None:
    settings = load_settings(SERVICE, PetApiSettings)
    configure_logging(SERVICE, settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.pet_api_host,
        port=settings.pet_api_port,
        access_log=False,  # core's middleware writes one JSON access line per request
        log_config=None,  # keep core's JSON logging
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()
