"""A small HTTP/1.1 keep-alive load generator over raw asyncio streams.

`LoadProcess` runs it in a separate (spawned) process, so the client never shares a GIL with
the server it measures; the child returns only a summary (counts and percentiles).
The fallback for the rate rows when wrk is missing; it also submits the jobs run's requests
(a fixed count, which wrk cannot do).
"""

from __future__ import annotations

import asyncio
import math
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import TypeVar
from urllib.parse import urlsplit

A = TypeVar("A")
R = TypeVar("R")


@dataclass(frozen=True)
class LoadSpec:
    url: str  # origin, e.g. http://127.0.0.1:8001
    method: str
    paths: tuple[str, ...]  # one is picked at random per request
    body: bytes | None = None
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    ok_statuses: tuple[int, ...] = (200,)
    connections: int = 16
    duration: float | None = 10.0  # seconds of measurement, or
    requests: int | None = None  # a fixed number of requests (then no warm-up)
    warmup: float = 1.0


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    elapsed: float = 0.0
    first_request_at: float = 0.0  # time.time() of the first measured request
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed if self.elapsed > 0 else math.nan


class BadResponse(Exception):
    pass


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    rank = max(0, math.ceil(q * len(sorted_values)) - 1)
    return sorted_values[rank]


def request_bytes(spec: LoadSpec, host: str, path: str) -> bytes:
    lines = [f"{spec.method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    lines += [f"{name}: {value}" for name, value in spec.headers]
    body = spec.body or b""
    if spec.body is not None:
        lines += [f"Content-Type: {spec.content_type}", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """Read one response; return (status, server wants the connection closed, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise BadResponse(lines[0])
    status = int(parts[1])
    length: int | None = None
    chunked = close = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif name == "connection" and value == "close":
            close = True
    body = b""
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            body += (await reader.readexactly(size + 2))[:size]
            if size == 0:
                break
    elif length is not None:
        body = await reader.readexactly(length)
    elif status not in (204, 304):
        raise BadResponse("response without length")
    return status, close, body


async def _load(spec: LoadSpec) -> LoadResult:
    parts = urlsplit(spec.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    host_header = parts.netloc
    requests_by_path = {p: request_bytes(spec, host_header, p) for p in spec.paths}
    paths = list(spec.paths)
    ok = set(spec.ok_statuses)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    errors = 0
    loop = asyncio.get_running_loop()
    start = loop.time()
    measure_from = start + (spec.warmup if spec.requests is None else 0.0)
    stop_at = measure_from + spec.duration if spec.duration is not None else math.inf
    tickets = spec.requests
    first_wall: list[float] = []

    async def connection() -> None:
        nonlocal errors, tickets
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            while True:
                if spec.requests is not None:
                    if tickets is None or tickets <= 0:
                        return
                    tickets -= 1
                elif loop.time() >= stop_at:
                    return
                sent = loop.time()
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection(host, port)
                        sent = loop.time()
                    assert reader is not None
                    if not first_wall and sent >= measure_from:
                        first_wall.append(time.time())
                    writer.write(requests_by_path[random.choice(paths)])
                    status, close, _ = await read_response(reader)
                    done = loop.time()
                except (OSError, asyncio.IncompleteReadError, BadResponse, ValueError):
                    if sent >= measure_from:
                        errors += 1
                        statuses["conn-error"] += 1
                    if writer is not None:
                        writer.close()
                    reader = writer = None
                    await asyncio.sleep(0.01)
                    continue
                if sent >= measure_from and done <= stop_at:
                    latencies.append(done - sent)
                    statuses[str(status)] += 1
                    if status not in ok:
                        errors += 1
                if close:
                    writer.close()
                    reader = writer = None
        finally:
            if writer is not None:
                writer.close()

    await asyncio.gather(*(connection() for _ in range(spec.connections)))
    end = min(loop.time(), stop_at)
    latencies.sort()
    return LoadResult(
        requests=len(latencies),
        errors=errors,
        elapsed=end - measure_from,
        first_request_at=first_wall[0] if first_wall else time.time(),
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        max_ms=(latencies[-1] * 1000) if latencies else math.nan,
        statuses=dict(statuses),
    )


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group; the parent handles it and kills this child.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_in_child(spec: LoadSpec) -> LoadResult:
    return asyncio.run(_load(spec))


class LoadProcess:
    """One spawned child process that runs load specs; reuse it for several targets."""

    def __init__(self) -> None:
        self._pool = ProcessPoolExecutor(
            max_workers=1, mp_context=get_context("spawn"), initializer=_ignore_sigint
        )

    def submit(self, spec: LoadSpec) -> Future[LoadResult]:
        return self._pool.submit(_run_in_child, spec)

    def run(self, spec: LoadSpec) -> LoadResult:
        return self.submit(spec).result()

    def call(self, fn: Callable[[A], R], arg: A) -> R:
        """Run a picklable module-level `fn(arg)` in the child (e.g. the paced client)."""
        return self._pool.submit(fn, arg).result()

    def close(self) -> None:
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            if proc.is_alive():
                proc.kill()
                proc.join(5)

    def __enter__(self) -> LoadProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
