"""Throwaway infrastructure for one suite: a database, a RabbitMQ vhost, service processes.

Everything is a context manager that cleans up in `finally`, so a failure or Ctrl-C still drops
the database, deletes the vhost and kills the processes it started (by process group).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import asyncpg
import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
ADMIN_DSN = os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_HOST = os.environ.get("BENCH_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("BENCH_PG_PORT", "5432"))
PG_USER = os.environ.get("BENCH_PG_USER", "postgres")
RABBIT_HOST = os.environ.get("BENCH_RABBITMQ_HOST", "127.0.0.1:5672")

BENCH_USER = "bench"
BENCH_PASSWORD = "bench-password-123"
JWT_SECRET = "bench-" + uuid.uuid4().hex + uuid.uuid4().hex


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Database:
    name: str

    @property
    def url(self) -> str:  # what the services read from DATABASE_URL
        return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.name}"

    @property
    def dsn(self) -> str:  # plain libpq DSN for asyncpg and psql
        return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.name}"


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def bench_database() -> Iterator[Database]:
    """Create bench_<uuid>, migrate it with alembic (as `make migrate` does), drop it after."""
    db = Database(f"bench_{uuid.uuid4().hex[:12]}")
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{db.name}"'))
        log(f"database {db.name}: migrating")
        subprocess.run(
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            cwd=REPO_ROOT,
            env={**os.environ, "DATABASE_URL": db.url},
            check=True,
            capture_output=True,
        )
        yield db
    finally:
        with _no_interrupt():
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)'))
            log(f"database {db.name}: dropped")


def _rabbitmqctl(*args: str, check: bool = True) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=check, capture_output=True, timeout=60)


@contextmanager
def bench_vhost() -> Iterator[str]:
    """A RabbitMQ vhost of our own (never the default one); yields its BROKER_URL."""
    vhost = f"bench-{uuid.uuid4().hex[:12]}"
    try:
        _rabbitmqctl("add_vhost", vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{RABBIT_HOST}/{quote(vhost, safe='')}"
    finally:
        with _no_interrupt():
            _rabbitmqctl("delete_vhost", vhost, check=False)
            log(f"vhost {vhost}: deleted")


@contextmanager
def _no_interrupt() -> Iterator[None]:
    """Let cleanup finish even if Ctrl-C (or SIGTERM) arrives while it runs; the interrupt is
    raised once this cleanup step is done, so the remaining steps still run as well."""
    caught: list[int] = []

    def defer(signum: int, _frame: object) -> None:
        caught.append(signum)

    previous = {sig: signal.signal(sig, defer) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        raise KeyboardInterrupt


@dataclass
class Service:
    name: str
    popen: subprocess.Popen[bytes]
    stderr_path: Path
    base_url: str | None = None

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, timeout: float = 15) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        with contextlib.suppress(ProcessLookupError):  # and anything it forked
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)


@contextmanager
def workdir() -> Iterator[Path]:
    """A temporary directory (service cwd, logs, local media), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench-") as path:
        yield Path(path)


@contextmanager
def service(
    name: str,
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    cwd: Path,
    logs: Path,
    health_url: str | None = None,
    ready_text: str | None = None,
    timeout: float = 60,
) -> Iterator[Service]:
    """Run `python <args>` in its own process group with `env` on top of os.environ.

    cwd is a scratch directory, so the checkout's .env is not read: every setting the suite
    relies on is passed explicitly.
    """
    stderr_path = logs / f"{name}.stderr.log"
    with stderr_path.open("wb") as err:
        popen = subprocess.Popen(
            [sys.executable, *args],
            cwd=cwd,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,  # Ctrl-C goes to us; we stop it in `finally`
        )
    proc = Service(name, popen, stderr_path)
    try:
        deadline = time.monotonic() + timeout
        while health_url is not None or ready_text is not None:
            if popen.poll() is not None:
                raise RuntimeError(f"{name} exited with {popen.returncode}:\n{proc.stderr()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} not ready within {timeout}s:\n{proc.stderr()}")
            if ready_text is not None and ready_text in proc.stderr():
                break
            if health_url is not None:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(health_url, timeout=1).status_code == 200:
                        break
            time.sleep(0.1)
        yield proc
    finally:
        with _no_interrupt():
            proc.stop()


def bench_app(
    name: str, port: int, args: Sequence[str], *, logs: Path
) -> AbstractContextManager[Service]:
    """One of the bench's own apps (bench/<name>.py: bare_app, lean_core, lean_asyncpg)."""
    return service(
        name,
        ["-m", f"bench.{name}", "--port", str(port), *args],
        {},
        cwd=REPO_ROOT,
        logs=logs,
        health_url=f"http://127.0.0.1:{port}/healthz",
    )


def uvicorn_service_env(db: Database) -> dict[str, str]:
    """Settings every service in a suite shares."""
    return {
        "ENVIRONMENT": "dev",
        "LOG_LEVEL": "INFO",
        "DATABASE_URL": db.url,
        "JWT_SECRET": JWT_SECRET,
    }


def create_user(db: Database) -> None:
    args = ["-m", "core.cli", "create-user", "--username", BENCH_USER]
    subprocess.run(
        [sys.executable, *args, "--password", BENCH_PASSWORD],
        cwd=REPO_ROOT,
        env={**os.environ, "DATABASE_URL": db.url, "JWT_SECRET": JWT_SECRET},
        check=True,
        capture_output=True,
    )


def get_token(base_url: str) -> str:
    resp = httpx.post(
        f"{base_url}/auth/token",
        data={"username": BENCH_USER, "password": BENCH_PASSWORD},
        timeout=30,
    )
    resp.raise_for_status()
    token: str = resp.json()["access_token"]
    return token


GNU_TIME = "/usr/bin/time"


def run_measured(
    args: Sequence[str], env: Mapping[str, str] | None = None
) -> tuple[float, float, int]:
    """Run a command with STDOUT to /dev/null; return (wall seconds, peak RSS MB, exit code).

    Linux copies the parent's RSS high-water mark into a forked child and keeps it across
    exec, so os.wait4's ru_maxrss for a child of this (large) process is at least our own RSS.
    GNU time, itself small after its exec, forks the command and reads ru_maxrss from its own
    wait4: that figure is the command's alone. Without /usr/bin/time we fall back to our own
    wait4, an upper bound.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".time") as out:
        use_time = os.access(GNU_TIME, os.X_OK)
        argv = [GNU_TIME, "-q", "-f", "%M", "-o", out.name, *args] if use_time else list(args)
        start = time.perf_counter()
        popen = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _, status, usage = os.wait4(popen.pid, 0)
        except BaseException:
            popen.kill()
            popen.wait()
            raise
        wall = time.perf_counter() - start
        popen.returncode = os.waitstatus_to_exitcode(status)
        err = popen.stderr.read().decode(errors="replace") if popen.stderr else ""
        if popen.stderr:
            popen.stderr.close()
        peak_kb = float(usage.ru_maxrss)
        if use_time:
            lines = [line for line in out.read().splitlines() if line.strip()]
            if lines and lines[-1].strip().isdigit():
                peak_kb = float(lines[-1])
    if popen.returncode != 0:
        log(f"{args[0]} exited {popen.returncode}: {err[-2000:]}")
    return wall, peak_kb / 1024, popen.returncode


def served_with(svc: Service) -> str:
    """What the server process really runs on, read from its memory map: uvicorn's "auto"
    picks uvloop and httptools only if they import, so a loaded extension is the one in use."""
    try:
        maps = Path(f"/proc/{svc.popen.pid}/maps").read_text()
    except OSError:
        return "unknown (no /proc)"
    loop = "uvloop" if "/uvloop/" in maps else "asyncio"
    http = "httptools" if "/httptools/" in maps else "h11"
    access = svc.stderr().count('"logger": "uvicorn.access"')
    log_note = f"access log ON ({access:,} lines)" if access else "no access log"
    return f"{svc.name}: {loop} + {http}, {log_note}"


def served_note(services: Sequence[Service]) -> str:
    return "Served with (from each process's memory map and STDERR): " + "; ".join(
        served_with(s) for s in services
    )
