"""`python -m pet_api`: serve the API with uvicorn on PET_API_HOST:PET_API_PORT."""

from __future__ import annotations

import uvicorn

from pet_api.settings import PetApiSettings


def main() -> None:
    settings = PetApiSettings()
    uvicorn.run(
        "pet_api.app:create_app",
        factory=True,
        host=settings.pet_api_host,
        port=settings.pet_api_port,
        # The factory installs JSON logging; access lines go through it with the request id.
        log_config=None,
    )


if __name__ == "__main__":
    main()
