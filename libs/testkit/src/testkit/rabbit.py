"""A RabbitMQ virtual host of its own per test session, so tests never share queues with a
running stack or with each other. Created and deleted with rabbitmqctl (root on this machine)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest

RABBIT_HOST = os.environ.get("TEST_RABBITMQ_HOST", "127.0.0.1:5672")


def _ctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextmanager
def fresh_vhost() -> Iterator[str]:
    """The URL of a new, empty virtual host; deleted (with its queues) afterwards."""
    vhost = f"test-{uuid.uuid4().hex[:10]}"
    _ctl("add_vhost", vhost)
    try:
        _ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{RABBIT_HOST}/{quote(vhost, safe='')}"
    finally:
        _ctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def broker_url() -> Iterator[str]:
    with fresh_vhost() as url:
        yield url


@pytest.fixture
def own_broker_url() -> Iterator[str]:
    """A vhost for this test alone (e.g. queues declared with other arguments)."""
    with fresh_vhost() as url:
        yield url
