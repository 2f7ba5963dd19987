"""A real PgBouncer in transaction mode in front of the test database: what a production
deployment behind a pooler looks like (Debian's `pgbouncer` package; .ci/run installs it)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from testkit.processes import free_port

CONFIG = """\
[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
auth_type = trust
auth_file = {dir}/users.txt
pool_mode = transaction
; Fewer server connections than the app's pool: statements of one client connection
; really do land on different server connections.
default_pool_size = 2
ignore_startup_parameters = extra_float_digits,application_name
unix_socket_dir =
logfile = {dir}/pgbouncer.log
pidfile = {dir}/pgbouncer.pid
"""


def _wait_for_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture(scope="session")
def pgbouncer_url(database_url: str) -> Iterator[str]:
    """The session database's URL, through PgBouncer (transaction pooling)."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.path.exists(binary):
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")
    url = make_url(database_url)
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    workdir.chmod(0o777)  # PgBouncer refuses to run as root: it drops to `nobody` below
    (workdir / "pgbouncer.ini").write_text(
        CONFIG.format(
            host=url.host or "127.0.0.1", port=url.port or 5432, listen_port=port, dir=workdir
        )
    )
    (workdir / "users.txt").write_text(f'"{url.username}" ""\n')
    command = [binary, str(workdir / "pgbouncer.ini")]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "nobody"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_port(port)
        yield url.set(port=port).render_as_string(hide_password=False)
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
