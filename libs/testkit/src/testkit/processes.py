"""Start real service processes for end-to-end tests and wait until they answer."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from testkit.database import REPO_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServiceProcess:
    """A child process whose STDOUT and STDERR go to files the test can read."""

    popen: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    base_url: str | None = None
    _files: list[object] = field(default_factory=list)

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.popen.send_signal(sig)

    def kill_group(self) -> None:
        """SIGKILL the process and every child it forked (e.g. dramatiq's worker processes),
        as when a container is killed."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)

    def stop(self, timeout: float = 10) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill_group()
        with contextlib.suppress(ProcessLookupError):  # no orphaned children left behind
            os.killpg(self.popen.pid, signal.SIGKILL)
        return self.popen.returncode


def wait_until_http_ok(url: str, proc: ServiceProcess, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"process exited with {proc.popen.returncode}:\n{proc.stderr()}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s:\n{proc.stderr()}")


@contextmanager
def run_process(
    args: Sequence[str], env: Mapping[str, str], *, health_url: str | None = None
) -> Iterator[ServiceProcess]:
    """Run `args` (python -m ... or a console script) with `env` on top of os.environ."""
    workdir = Path(tempfile.mkdtemp(prefix="svc-"))
    out, err = workdir / "stdout.log", workdir / "stderr.log"
    with out.open("wb") as out_f, err.open("wb") as err_f:
        popen = subprocess.Popen(
            [sys.executable, *args] if args[0] == "-m" else list(args),
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdout=out_f,
            stderr=err_f,
            start_new_session=True,  # its own process group, so kill_group() reaches children
        )
    proc = ServiceProcess(popen, out, err, base_url=None)
    try:
        if health_url is not None:
            wait_until_http_ok(health_url, proc)
        yield proc
    finally:
        proc.stop()


@contextmanager
def run_uvicorn(
    app: str, env: Mapping[str, str], port: int | None = None
) -> Iterator[ServiceProcess]:
    """Serve an ASGI app factory (`pkg.app:create_app`) with uvicorn on a free port."""
    port = port or free_port()
    args = ["-m", "uvicorn", "--factory", app, "--host", "127.0.0.1", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with run_process(args, env, health_url=f"{base}/healthz") as proc:
        proc.base_url = base
        yield proc
