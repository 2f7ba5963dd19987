"""`python -m gateway`: serve the API with uvicorn on GATEWAY_HOST:GATEWAY_PORT."""

from __future__ import annotations

import contextlib
import socket
import sys

import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE

from core.logging import load_settings
from gateway.app import create_app
from gateway.settings import GatewaySettings


class GatewayServer(uvicorn.Server):
    """Ends the event streams and `Prefer: wait` requests as shutdown begins: uvicorn waits for
    every open response before it runs the app's lifespan shutdown, and the stream of a job
    still queued has no end of its own. Streams end cleanly; clients resume elsewhere with
    Last-Event-ID."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        gateway = getattr(self._app.state, "gateway", None)
        if gateway is not None:
            gateway.changes.close()
        await super().shutdown(sockets)


def main() -> None:
    settings = load_settings("gateway", GatewaySettings)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.gateway_host,
        port=settings.gateway_port,
        access_log=False,  # core's middleware writes one JSON access line per request
        log_config=None,  # keep core's JSON logging
        proxy_headers=True,
    )
    server = GatewayServer(config, app)
    with contextlib.suppress(KeyboardInterrupt):  # SIGINT after a clean shutdown, as uvicorn.run
        server.run()
    if not server.started:  # as uvicorn.run: a failed start-up is a failed exit
        sys.exit(STARTUP_FAILURE)


if __name__ == "__main__":
    main()
