"""Generate suite.

(a) POST /generate through the gateway (bearer token, local storage, publishing to our own
    vhost), the Core and raw-asyncpg reference apps (publishing to the same vhost), next to the
    bare app's POST /echo, same run; the queue is purged after every run. No worker.
(b) Publish lag at half the gateway's measured rate (open loop), gateway and raw asyncpg, with
    a consumer taking the messages off the queue (bench/publish_lag.py).
(c) N jobs through ONE generation_worker process (default threads) against replicate_mock with
    a fixed latency: submitted with POST /generate, timed from the first submit until every job
    is terminal (one count query every 0.5 s), bounded by a timeout.
(d) The same N jobs again, in the same run, with Replicate webhooks on (the mock sends signed
    webhooks to the gateway, which hands them to the worker; polls only every 30 s as the
    fallback), next to (c): messages per job, as the worker counted what it took, once every
    queue of the vhost is empty.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
import asyncpg
import httpx

from bench import publish_lag
from bench.amqp import declare_generation_queue
from bench.infra import (
    BENCH_USER,
    Database,
    Service,
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
DEFAULT_WEBHOOK_EVENTS = "start,logs,completed"  # the worker's default filter
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
    webhook_events: str = DEFAULT_WEBHOOK_EVENTS,
) -> str:
    out = _run_gateway_load(opts)
    if jobs > 0:
        images = f"{output_format}, {megapixels} MP"
        runs = {
            hooked: _run_jobs(
                opts,
                jobs=jobs,
                mock_latency=mock_latency,
                timeout=timeout,
                output_format=output_format,
                megapixels=megapixels,
                webhook_events=webhook_events if hooked else None,
            )
            for hooked in (False, True)
        }
        out += "\n" + _jobs_table(jobs, mock_latency, runs[False], images)
        out += "\n" + _webhooks_table(
            jobs, mock_latency, runs[False], runs[True], images, webhook_events
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
    # What the worker took (its "worker stopped" line; generation_worker.message_counts), by
    # actor: actor runs, and deliveries off a delay queue before them.
    processed: dict[str, int] = field(default_factory=dict)
    delayed: dict[str, int] = field(default_factory=dict)
    # The mock's counters: API calls by endpoint, webhooks delivered.
    mock_calls: dict[str, int] = field(default_factory=dict)
    webhooks_delivered: int = 0
    drained: bool = False  # every queue was empty when the worker was stopped


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
    webhook_events: str | None = None,
) -> JobsOutcome:
    """One jobs run; `webhook_events` (Replicate's events filter) turns webhooks on."""
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
            "REPLICATE_MOCK_WEBHOOK_CONCURRENCY": str(WEBHOOK_SENDER_CONCURRENCY),
        }
        replicate = {"REPLICATE_BASE_URL": mock_url, "REPLICATE_API_TOKEN": MOCK_TOKEN}
        worker_env = {
            **uvicorn_service_env(db),
            **replicate,
            "BROKER_URL": broker_url,
            "STORAGE_BACKEND": "local",
            "STORAGE_LOCAL_ROOT": str(media),
            "GENERATION_PROCESSES": "1",
            "GENERATION_METRICS_PORT": "0",  # counted all the same; not served (no port clash)
        }
        if webhook_events is not None:  # the fallback poll interval stays at its default
            worker_env["REPLICATE_WEBHOOK_BASE_URL"] = gw_url
            worker_env["REPLICATE_WEBHOOK_EVENTS_FILTER"] = webhook_events
        gateway_env = {
            **_gateway_env(db, broker_url, gw_port, media),
            **replicate,  # the gateway asks the mock for its webhook secret
            "LOG_LEVEL": "WARNING",
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
            ) as worker,
            service(
                "gateway",
                ["-m", "gateway"],
                gateway_env,
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
            mode = "polling" if webhook_events is None else f"webhooks: {webhook_events}"
            log(f"generate: submitting {jobs:,} jobs ({mode}); mock latency {mock_latency:g}s")
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
            # Messages per job include the ones after the last job finished (late polls, the
            # webhooks' fallback polls): wait for every queue to empty, then stop the worker,
            # which writes what it took.
            outcome.drained = _wait_until_drained(broker_url, DRAIN_TIMEOUT_SECONDS)
            _record_mock_stats(outcome, mock_url)
            worker.stop()
            _record_worker_counts(outcome, worker)
    return outcome


# The mock sends at most this many webhooks at once (its default is 16); Replicate's own
# sender is not known to hold back a receiver.
WEBHOOK_SENDER_CONCURRENCY = 64
# Longer than the webhooks' fallback poll interval (30 s): every fallback poll has run by then.
DRAIN_TIMEOUT_SECONDS = 90.0


def _queue_depths(broker_url: str) -> dict[str, int]:
    """Messages (ready and unacknowledged, delayed ones included) in each queue of the vhost;
    rabbitmqctl, since the management API may not be there."""
    vhost = unquote(urlsplit(broker_url).path.removeprefix("/"))
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "--no-table-headers", "name", "messages"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    depths = {}
    for line in listed.splitlines():
        name, _, count = line.rpartition("\t")
        if name:
            depths[name] = int(count)
    return depths


def _wait_until_drained(broker_url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        depths = _queue_depths(broker_url)
        if not any(depths.values()):
            return True
        if time.monotonic() > deadline:
            log(f"generate: queues not empty after {timeout:g}s: {depths}")
            return False
        time.sleep(1.0)


def _record_mock_stats(outcome: JobsOutcome, mock_url: str) -> None:
    response = httpx.get(
        f"{mock_url}/_mock/stats", headers={"Authorization": f"Bearer {MOCK_TOKEN}"}, timeout=10
    )
    stats: dict[str, Any] = response.raise_for_status().json()
    outcome.mock_calls = dict(stats["calls"])
    deliveries = stats["webhooks"]["deliveries"].values()
    outcome.webhooks_delivered = sum(event.get("delivered", 0) for event in deliveries)


def _record_worker_counts(outcome: JobsOutcome, worker: Service) -> None:
    for line in reversed(worker.stderr().splitlines()):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("msg") == "worker stopped":
            outcome.processed = entry["messages"]["processed"]
            outcome.delayed = entry["messages"]["delayed"]
            return
    log("generate: the worker did not log its message counts")


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


def _per_job(count: float, o: JobsOutcome) -> float:
    return count / o.terminal if o.terminal and o.processed else float("nan")


def _webhooks_table(
    jobs: int,
    mock_latency: float,
    polling: JobsOutcome,
    hooked: JobsOutcome,
    images: str,
    webhook_events: str,
) -> str:
    header = [
        "mode",
        "msgs/job",
        "actor runs/job",
        "polls/job",
        "webhooks/job",
        "Replicate GETs/job",
        "all terminal s",
        "job p50 s",
        "job p99 s",
        "succeeded",
        "failed",
    ]
    rows = []
    for label, o in (("polling", polling), ("webhooks", hooked)):
        runs = sum(o.processed.values())
        label += " (timed out: partial)" if o.timed_out else ""
        label += "" if o.drained else " (queues not drained)"
        rows.append(
            [
                label,
                _per_job(runs + sum(o.delayed.values()), o),
                _per_job(runs, o),
                _per_job(o.processed.get("poll_generation", 0), o),
                _per_job(o.processed.get("prediction_webhook", 0), o),
                _per_job(o.mock_calls.get("get", 0), o),
                o.seconds,
                o.p50_job_s,
                o.p99_job_s,
                o.succeeded,
                o.failed,
            ]
        )
    title = (
        f"generate (d): {jobs:,} jobs, Replicate webhooks vs polling, same run, one worker "
        f"process, mock latency {mock_latency:g} s, {images} images"
    )
    out = markdown(title, header, rows)
    out += (
        "\nPolling: the worker polls each prediction (1 s, x1.5 up to 10 s). Webhooks: "
        f"REPLICATE_WEBHOOK_BASE_URL set, events {webhook_events.replace(',', ', ')} (each "
        "one a message; `--webhook-events completed` sends one a job); the mock signs and sends "
        f"them ({WEBHOOK_SENDER_CONCURRENCY} at once) to the gateway, which verifies each and "
        "publishes it for the worker; one fallback poll per job 30 s after its create. "
        "**msgs/job** = the messages the worker took off RabbitMQ per job, counted by the worker "
        "itself (generation_worker.message_counts, written when it stops): actor runs (every "
        "generate, poll and webhook message, retries included) plus deliveries off a delay "
        "queue (each delayed poll or retry is delivered twice: once off `*.DQ`, held until its "
        "eta, then republished and delivered to its queue). Counted after every queue of the "
        "vhost was empty, so the fallback polls that come after the last job finished are in "
        "it. Replicate GETs/job: prediction fetches the mock served. Times as in (c).\n"
    )
    return out
