"""`python -m gateway`: serve the API with uvicorn on GATEWAY_HOST:GATEWAY_PORT."""

from __future__ import annotations

import uvicorn

from core.logging import load_settings
from gateway.app import create_app
from gateway.settings import GatewaySettings


def main() -> None:
    settings = load_settings("gateway", GatewaySettings)
    uvicorn.run(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        access_log=False,  # core's middleware writes one JSON access line per request
        log_config=None,  # keep core's JSON logging
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()
