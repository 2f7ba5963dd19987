"""Publish lag: POST /generate at a fixed rate (open loop) while a consumer takes the messages
off the `generation` queue, and per job the time from commit to the message's arrival.

The commit time is not observable from outside, so two bounds are reported:
- arrival - created_at: the server sets created_at before its INSERT, so before the commit;
  this OVERestimates the lag (it also holds the INSERT and commit themselves);
- arrival - 202: the client's time.time() when the 202 arrived, after the commit; this
  UNDERestimates it, and is negative when the message was on the queue before the answer left
  (the gateway publishes and waits for the confirm before answering).
All times are wall-clock time on this one machine. The consumer (aio-pika, no_ack, its own
process) stamps arrival on delivery, a little after RabbitMQ has the message.

wrk cannot hold a constant rate, so the client here is a small paced asyncio client: request i
leaves at start + i/rate whatever happened to earlier ones, each on an idle keep-alive
connection or a new one, and its latency is taken from that intended start (no coordinated
omission).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing import get_context
from multiprocessing.connection import Connection
from urllib.parse import urlsplit

import aio_pika
import asyncpg
from aio_pika.abc import AbstractIncomingMessage

from bench.amqp import declare_generation_queue
from bench.load import BadResponse, LoadProcess, LoadSpec, read_response, request_bytes
from bench.table import markdown

READY_TIMEOUT = 30.0
DRAIN_SECONDS = 10.0  # after the last 202, how long messages still in flight may take
WARM_CONNECTIONS = 8


# --- the paced client (runs in the load child process) -------------------------------------


@dataclass(frozen=True)
class PacedSpec:
    load: LoadSpec  # url, path, body, headers, expected status
    rate: float
    duration: float


@dataclass
class PacedResult:
    sent: int = 0
    errors: int = 0
    # job_id -> time.time() when its 202 arrived
    accepted: dict[str, float] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)


async def _paced(spec: PacedSpec) -> PacedResult:
    parts = urlsplit(spec.load.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    raw = request_bytes(spec.load, parts.netloc, spec.load.paths[0])
    ok = set(spec.load.ok_statuses)
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    out = PacedResult()
    for _ in range(WARM_CONNECTIONS):
        idle.append(await asyncio.open_connection(host, port))
    loop = asyncio.get_running_loop()

    async def one(intended_wall: float) -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            conn = idle.pop() if idle else await asyncio.open_connection(host, port)
            conn[1].write(raw)
            status, close, body = await read_response(conn[0])
        except (OSError, asyncio.IncompleteReadError, BadResponse, ValueError):
            out.errors += 1
            if conn is not None:
                conn[1].close()
            return
        now = time.time()
        out.latencies_ms.append((now - intended_wall) * 1000)
        if status in ok:
            out.accepted[str(json.loads(body)["job_id"])] = now
        else:
            out.errors += 1
        if close:
            conn[1].close()
        else:
            idle.append(conn)

    count = max(1, round(spec.rate * spec.duration))
    start, start_wall = loop.time(), time.time()
    tasks = []
    for i in range(count):
        delay = start + i / spec.rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(start_wall + i / spec.rate)))
    out.sent = count
    await asyncio.gather(*tasks)
    for _, writer in idle:
        writer.close()
    return out


def run_paced(spec: PacedSpec) -> PacedResult:
    return asyncio.run(_paced(spec))


# --- the consumer (its own process) --------------------------------------------------------


async def _consume(broker_url: str, pipe: Connection) -> None:
    connection = await aio_pika.connect_robust(broker_url)
    arrivals: dict[str, float] = {}
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1000)
        queue = await declare_generation_queue(channel)
        await queue.purge()  # leftovers of the rate runs

        async def on_message(message: AbstractIncomingMessage) -> None:
            at = time.time()
            job_id = str(json.loads(message.body)["args"][0])
            arrivals.setdefault(job_id, at)

        await queue.consume(on_message, no_ack=True)
        pipe.send("ready")
        loop = asyncio.get_running_loop()
        expected, wait = await loop.run_in_executor(None, pipe.recv)
        deadline = loop.time() + wait
        while loop.time() < deadline and not set(expected) <= arrivals.keys():
            await asyncio.sleep(0.05)
        pipe.send({job_id: arrivals[job_id] for job_id in expected if job_id in arrivals})
    finally:
        await connection.close()


def _consumer_main(broker_url: str, pipe: Connection) -> None:
    asyncio.run(_consume(broker_url, pipe))


# --- orchestration (the bench process) -----------------------------------------------------


async def _created_at(dsn: str, job_ids: list[str]) -> dict[str, float]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT id, created_at FROM jobs WHERE id = ANY($1::uuid[])",
            [uuid.UUID(j) for j in job_ids],
        )
    finally:
        await conn.close()
    return {str(r["id"]): r["created_at"].timestamp() for r in rows}


def _pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class Lag:
    label: str
    rate: float
    sent: int
    accepted: int
    arrived: int
    errors: int
    after_created: list[float]  # ms, upper bound
    after_202: list[float]  # ms, lower bound
    latencies_ms: list[float]


def measure(label: str, spec: PacedSpec, *, broker_url: str, dsn: str) -> Lag:
    ctx = get_context("spawn")
    parent, child = ctx.Pipe()
    consumer = ctx.Process(target=_consumer_main, args=(broker_url, child), daemon=True)
    consumer.start()
    try:
        if not parent.poll(READY_TIMEOUT) or parent.recv() != "ready":
            raise TimeoutError("publish-lag consumer did not start")
        with LoadProcess() as load:
            paced = load.call(run_paced, spec)
        parent.send((list(paced.accepted), DRAIN_SECONDS))
        if not parent.poll(DRAIN_SECONDS + 30):
            raise TimeoutError("publish-lag consumer did not answer")
        arrivals: dict[str, float] = parent.recv()
    finally:
        if consumer.is_alive():
            consumer.kill()
        consumer.join(5)
    created = asyncio.run(_created_at(dsn, list(arrivals)))
    return Lag(
        label=label,
        rate=spec.rate,
        sent=paced.sent,
        accepted=len(paced.accepted),
        arrived=len(arrivals),
        errors=paced.errors,
        after_created=[(t - created[j]) * 1000 for j, t in arrivals.items() if j in created],
        after_202=[(t - paced.accepted[j]) * 1000 for j, t in arrivals.items()],
        latencies_ms=paced.latencies_ms,
    )


HEADER = [
    "target",
    "offered req/s",
    "sent",
    "202",
    "on queue",
    "arrival - created_at p50 ms",
    "p99 ms",
    "arrival - 202 p50 ms",
    "p99 ms",
    "response p50 ms",
    "response p99 ms",
]


def lag_table(title: str, lags: list[Lag]) -> str:
    rows = [
        [
            lag.label,
            lag.rate,
            lag.sent,
            lag.accepted,
            lag.arrived,
            _pct(lag.after_created, 0.5),
            _pct(lag.after_created, 0.99),
            _pct(lag.after_202, 0.5),
            _pct(lag.after_202, 0.99),
            _pct(lag.latencies_ms, 0.5),
            _pct(lag.latencies_ms, 0.99),
        ]
        for lag in lags
    ]
    return markdown(title, HEADER, rows)
