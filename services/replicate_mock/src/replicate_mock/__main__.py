"""`python -m replicate_mock`: serve the mock on REPLICATE_MOCK_HOST:REPLICATE_MOCK_PORT."""

from __future__ import annotations

import uvicorn

from core.logging import configure_logging, load_settings
from replicate_mock.app import create_app
from replicate_mock.settings import MockSettings


def main() -> None:
    settings = load_settings("replicate_mock", MockSettings)
    configure_logging("replicate_mock", settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.replicate_mock_host,
        port=settings.replicate_mock_port,
        log_config=None,
    )


if __name__ == "__main__":
    main()
