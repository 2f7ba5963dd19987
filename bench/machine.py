"""What the run ran on, for the header of the tables and of RESULTS.md."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from bench.infra import ADMIN_DSN
from bench.wrk import wrk_path


def _first(path: str, key: str) -> str | None:
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    return None


def _postgres_version() -> str:
    async def fetch() -> str:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    try:
        return asyncio.run(fetch()).split()[0]
    except (OSError, asyncpg.PostgresError):
        return "?"


def _wrk_version() -> str:
    wrk = wrk_path()
    if wrk is None:
        return "not installed"
    # `wrk -v` prints its version line, then the usage, and exits 1.
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10)
    line = (done.stdout or done.stderr).splitlines()[0] if (done.stdout or done.stderr) else ""
    return line.split(" [")[0].removeprefix("wrk ") or "?"


def _rabbitmq_version() -> str:
    try:
        done = subprocess.run(
            ["rabbitmqctl", "-q", "version"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return done.stdout.strip() or "?"


def load_average() -> str:
    """Other work on the machine shows here first: the bench alone keeps it near 2."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} (1, 5, 15 min)"


def describe() -> list[str]:
    mem_kb = _first("/proc/meminfo", "MemTotal") or "0 kB"
    mem_gb = int(mem_kb.split()[0]) / 1024 / 1024
    cpu = _first("/proc/cpuinfo", "model name") or platform.processor() or "?"
    return [
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"Machine: {platform.node()}, {os.cpu_count()} CPUs ({cpu}), {mem_gb:.0f} GB RAM, "
        f"{platform.system()} {platform.release()}",
        f"Software: Python {platform.python_version()}, PostgreSQL {_postgres_version()}, "
        f"RabbitMQ {_rabbitmq_version()}, wrk {_wrk_version()}; every process (load generator "
        "included) on this machine, over loopback",
        f"At the start: {load_average()}",
    ]
