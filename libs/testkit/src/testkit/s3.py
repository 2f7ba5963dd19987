"""A real S3 HTTP endpoint for tests: moto in server mode, run as a subprocess.

Session-scoped: one server for the whole test session. moto keeps all state in memory and
shares it between tests, so give each test its own bucket name (see `S3Endpoint.new_bucket`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from testkit.processes import ServiceProcess, free_port, run_process

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Endpoint:
    endpoint: str  # host:port, no scheme (what S3_ENDPOINT takes)
    access_key: str
    secret_key: str
    region: str
    process: ServiceProcess

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    @staticmethod
    def new_bucket(prefix: str = "test") -> str:
        """A fresh, valid bucket name so tests sharing the server do not see each other."""
        return f"{prefix}-{uuid.uuid4().hex[:20]}"

    def env(self, bucket: str) -> dict[str, str]:
        """Environment for a service process that should store media in this endpoint."""
        return {
            "STORAGE_BACKEND": "s3",
            "S3_ENDPOINT": self.endpoint,
            "S3_ACCESS_KEY": self.access_key,
            "S3_SECRET_KEY": self.secret_key,
            "S3_BUCKET": bucket,
            "S3_REGION": self.region,
            "S3_SECURE": "false",
        }


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[S3Endpoint]:
    port = free_port()
    env = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
    }
    args = ["-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    # moto answers GET /moto-api/data.json once its Flask app is serving.
    with run_process(args, env, health_url=f"http://127.0.0.1:{port}/moto-api/data.json") as proc:
        proc.base_url = f"http://127.0.0.1:{port}"
        yield S3Endpoint(f"127.0.0.1:{port}", ACCESS_KEY, SECRET_KEY, REGION, proc)
