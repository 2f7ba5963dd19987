"""Generate suite.

(a) POST /generate through the gateway (bearer token, local storage, publishing to our own
    vhost), the Core and raw-asyncpg reference apps (publishing to the same vhost), next to the
    bare app's POST /echo, same run; the queue is purged after every run. No worker.
(b) Publish lag at half the gateway's measured rate (open loop), gateway and raw asyncpg, with
    a consumer taking the messages off the queue (bench/publish_lag.py).
(c) N jobs through ONE generation_worker process (default threads) against replicate_mock with
    a fixed latency: submitted with POST /generate, timed from the first submit until every job
    is terminal (one count query every 0.5 s), bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import asyncpg

from bench import publish_lag
from bench.amqp import declare_generation_queue
from bench.infra import (
    BENCH_USER,
    Database,
    bench_app,
    bench_database,
    bench_vhost,
    create_user,
    free_port,
    get_token,
    log,
    served_note,
    service,
    uvicorn_service_env,
    workdir,
)
from bench.load import LoadProcess, LoadSpec
from bench.rates import RateOptions, Target, measure, rate_table
from bench.table import markdown

GENERATE_BODY = json.dumps({"prompt": "a red fox in snow, watercolor"}).encode()
ECHO_BODY = json.dumps({"name": "Rex", "pet_type": "dog"}).encode()
BARE_POST = "bare POST /echo"
GATEWAY = "gateway POST /generate (bearer token)"
RAW = "raw asyncpg POST /generate"
MOCK_TOKEN = "bench-mock-token"
POLL_SECONDS = 0.5
COUNT_SQL = """
SELECT count(*) FILTER (WHERE status IN ('succeeded', 'failed', 'canceled')),
       count(*) FILTER (WHERE status = 'succeeded'),
       count(*) FILTER (WHERE status = 'failed'),
       count(*)
FROM jobs
"""
LATENCY_SQL = """
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at)),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at))
FROM jobs WHERE finished_at IS NOT NULL
"""
RATE_NOTE = (
    "Issue target: gateway POST /generate >= 20 % of bare POST. The reference apps insert the "
    "job row (already marked enqueued, so the gateway's sweep leaves it alone) and publish the "
    "same Dramatiq message with publisher confirms before answering; they take no bearer token "
    "and write no job_events row. The gateway commits the job and its event (concurrent "
    "requests in one INSERT) and answers; its relay publishes after the commit."
)
LAG_NOTE = (
    "Issue target: the message on RabbitMQ within 100 ms (p99) of the commit at half the "
    "gateway's rate. The true commit-to-queue lag lies between the two bounds: arrival - "
    "created_at is an upper bound (created_at is taken in the server before the INSERT), "
    "arrival - 202 a lower bound (negative: the message was on the queue before the 202 "
    "reached the client). Open-loop client at a fixed rate; a consumer in its own process "
    "takes the messages off the `generation` queue (no worker running)."
)


def _gateway_env(db: Database, broker_url: str, port: int, media: Path) -> dict[str, str]:
    return {
        **uvicorn_service_env(db),
        "BROKER_URL": broker_url,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "STORAGE_BACKEND": "local",
        "STORAGE_LOCAL_ROOT": str(media),
        # One benchmark user sends thousands a minute: counted (its cost is measured), never
        # refused.
        "GATEWAY_RATE_LIMIT_PER_MINUTE": str(10**9),
    }


def run(
    opts: RateOptions,
    *,
    jobs: int,
    mock_latency: float,
    timeout: float,
    output_format: str = "jpg",
    megapixels: str = "0.25",
) -> str:
    out = _run_gateway_load(opts)
    if jobs > 0:
        out += "\n" + _run_jobs(
            opts,
            jobs=jobs,
            mock_latency=mock_latency,
            timeout=timeout,
            output_format=output_format,
            megapixels=megapixels,
        )
    return out


async def _purge(broker_url: str) -> None:
    connection = await aio_pika.connect(broker_url)
    try:
        channel = await connection.channel()
        await (await declare_generation_queue(channel)).purge()
    finally:
        await connection.close()


def _publish_lags(
    targets: list[tuple[str, LoadSpec]],
    rate: float,
    duration: float,
    broker_url: str,
    db: Database,
) -> list[publish_lag.Lag]:
    lags = []
    for label, spec in targets:
        log(f"generate: publish lag, {label} at {rate:.1f} req/s for {duration:g} s")
        paced = publish_lag.PacedSpec(spec, rate=rate, duration=duration)
        lags.append(publish_lag.measure(label, paced, broker_url=broker_url, dsn=db.dsn))
    return lags


def _run_gateway_load(opts: RateOptions) -> str:
    with workdir() as tmp, bench_database() as db, bench_vhost() as broker_url:
        create_user(db)
        gw_port, bare_port, core_port, apg_port = (free_port() for _ in range(4))
        gw, bare, core, apg = (
            f"http://127.0.0.1:{port}" for port in (gw_port, bare_port, core_port, apg_port)
        )
        env = _gateway_env(db, broker_url, gw_port, tmp / "media")
        lean = ["--dsn", db.dsn, "--broker-url", broker_url, "--owner", BENCH_USER]
        with (
            service(
                "gateway", ["-m", "gateway"], env, cwd=tmp, logs=tmp, health_url=f"{gw}/healthz"
            ) as gw_svc,
            bench_app("bare_app", bare_port, [], logs=tmp) as bare_svc,
            bench_app("lean_core", core_port, lean, logs=tmp) as core_svc,
            bench_app("lean_asyncpg", apg_port, lean, logs=tmp) as apg_svc,
        ):
            auth = (("Authorization", f"Bearer {get_token(gw)}"),)
            accepted = (202,)

            def generate(url: str, headers: tuple[tuple[str, str], ...] = ()) -> LoadSpec:
                return LoadSpec(
                    url,
                    "POST",
                    ("/generate",),
                    GENERATE_BODY,
                    headers=headers,
                    ok_statuses=accepted,
                )

            targets = [
                Target(
                    BARE_POST,
                    LoadSpec(bare, "POST", ("/echo",), ECHO_BODY, ok_statuses=(201,)),
                ),
                Target(GATEWAY, generate(gw, auth), BARE_POST),
                Target("AsyncSession + Core POST /generate", generate(core), BARE_POST),
                Target(RAW, generate(apg), BARE_POST),
            ]
            # A queue that grows by tens of thousands of persistent messages would slow later
            # publishers; each run starts from an empty one.
            rates = measure(
                targets,
                opts,
                after_run=lambda _t: asyncio.run(_purge(broker_url)),
                suite="generate",
            )
            rate = max(1.0, rates[GATEWAY].median.rps / 2)
            lag_targets = [(GATEWAY, generate(gw, auth)), (RAW, generate(apg))]
            lags = _publish_lags(lag_targets, rate, opts.duration, broker_url, db)
            served = served_note([bare_svc, gw_svc, core_svc, apg_svc])
    out = rate_table("generate (a): POST /generate, no worker", targets, rates, opts)
    out += f"\n{RATE_NOTE}\n\n{served}\n\n"
    lag_title = (
        f"generate (b): publish lag at half the gateway's rate ({rate:.1f} req/s, open loop, "
        f"{opts.duration:g} s)"
    )
    return out + publish_lag.lag_table(lag_title, lags) + f"\n{LAG_NOTE}\n"


@dataclass
class JobsOutcome:
    submitted: int = 0
    submit_errors: int = 0
    submit_seconds: float = float("nan")
    seconds: float = float("nan")
    terminal: int = 0
    succeeded: int = 0
    failed: int = 0
    timed_out: bool = False
    p50_job_s: float = float("nan")
    p99_job_s: float = float("nan")
    connections: int = 0


async def _count(dsn: str) -> tuple[int, int, int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(COUNT_SQL)
        assert row is not None
        return row[0], row[1], row[2], row[3]
    finally:
        await conn.close()


async def _latencies(dsn: str) -> tuple[float, float]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(LATENCY_SQL)
        assert row is not None
        return (
            float(row[0]) if row[0] is not None else float("nan"),
            float(row[1]) if row[1] is not None else float("nan"),
        )
    finally:
        await conn.close()


def _run_jobs(
    opts: RateOptions,
    *,
    jobs: int,
    mock_latency: float,
    timeout: float,
    output_format: str,
    megapixels: str,
) -> str:
    params = {"output_format": output_format, "megapixels": megapixels}
    body = json.dumps({"prompt": "a red fox in snow, watercolor", "params": params}).encode()
    outcome = JobsOutcome(connections=opts.connections)
    with workdir() as tmp, bench_database() as db, bench_vhost() as broker_url:
        create_user(db)
        gw_port, mock_port = free_port(), free_port()
        gw_url, mock_url = f"http://127.0.0.1:{gw_port}", f"http://127.0.0.1:{mock_port}"
        media = tmp / "media"
        mock_env = {
            "LOG_LEVEL": "WARNING",
            "REPLICATE_MOCK_HOST": "127.0.0.1",
            "REPLICATE_MOCK_PORT": str(mock_port),
            "REPLICATE_MOCK_API_TOKENS": MOCK_TOKEN,
            "REPLICATE_MOCK_LATENCY_SECONDS": str(mock_latency),
        }
        worker_env = {
            **uvicorn_service_env(db),
            "BROKER_URL": broker_url,
            "REPLICATE_BASE_URL": mock_url,
            "REPLICATE_API_TOKEN": MOCK_TOKEN,
            "STORAGE_BACKEND": "local",
            "STORAGE_LOCAL_ROOT": str(media),
            "GENERATION_PROCESSES": "1",
        }
        with (
            service(
                "replicate_mock",
                ["-m", "replicate_mock"],
                mock_env,
                cwd=tmp,
                logs=tmp,
                health_url=f"{mock_url}/healthz",
            ),
            service(
                "generation_worker",
                ["-m", "generation_worker"],
                worker_env,
                cwd=tmp,
                logs=tmp,
                ready_text="worker ready",
            ),
            service(
                "gateway",
                ["-m", "gateway"],
                {**_gateway_env(db, broker_url, gw_port, media), "LOG_LEVEL": "WARNING"},
                cwd=tmp,
                logs=tmp,
                health_url=f"{gw_url}/healthz",
            ),
            LoadProcess() as load,
        ):
            auth = (("Authorization", f"Bearer {get_token(gw_url)}"),)
            spec = LoadSpec(
                gw_url,
                "POST",
                ("/generate",),
                body,
                headers=auth,
                ok_statuses=(202,),
                connections=opts.connections,
                duration=None,
                requests=jobs,
            )
            log(f"generate: submitting {jobs:,} jobs; mock latency {mock_latency:g}s")
            submitted_at = time.time()
            future = load.submit(spec)
            while True:
                time.sleep(POLL_SECONDS)
                terminal, ok, failed, total = asyncio.run(_count(db.dsn))
                now = time.time()
                if future.done() and terminal >= total:
                    break
                if now - submitted_at > timeout:
                    outcome.timed_out = True
                    break
            first = future.result().first_request_at if future.done() else submitted_at
            if future.done():
                result = future.result()
                outcome.submitted = result.requests - result.errors
                outcome.submit_errors = result.errors
                outcome.submit_seconds = result.elapsed
            outcome.seconds = now - first
            outcome.terminal, outcome.succeeded, outcome.failed = terminal, ok, failed
            outcome.p50_job_s, outcome.p99_job_s = asyncio.run(_latencies(db.dsn))
            log(f"generate: {terminal:,}/{total:,} terminal after {outcome.seconds:.1f}s")
    return _jobs_table(jobs, mock_latency, outcome, f"{output_format}, {megapixels} MP")


def _jobs_table(jobs: int, mock_latency: float, o: JobsOutcome, images: str) -> str:
    header = [
        "jobs",
        "submit s",
        "all terminal s",
        "jobs/s",
        "succeeded",
        "failed",
        "job p50 s",
        "job p99 s",
    ]
    label = f"{jobs:,}" + (" (timed out: partial)" if o.timed_out else "")
    rows = [
        [
            label,
            o.submit_seconds,
            o.seconds,
            o.terminal / o.seconds if o.seconds > 0 else float("nan"),
            o.succeeded,
            o.failed,
            o.p50_job_s,
            o.p99_job_s,
        ]
    ]
    title = (
        f"generate (c): {jobs:,} jobs through one generation_worker process (default threads), "
        f"mock latency {mock_latency:g} s, {images} images, from first submit until all terminal"
    )
    out = markdown(title, header, rows)
    out += (
        "\nIssue targets (1,000 jobs at once, 2 s mock, small images, one worker process): all "
        "terminal <= 15 s after the first submission; job p99 <= 8 s. Submitted by bench/load.py "
        f"over {o.connections} connections as fast as the gateway takes them.\n"
    )
    if o.submit_errors:
        out += f"\n{o.submit_errors:,} submissions were not accepted (no 202).\n"
    return out
