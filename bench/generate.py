"""Generate suite.

(a) POST /generate through the gateway (bearer token, local storage, publishing to our own
    vhost) next to the bare app's POST /echo, same run. No worker: the jobs stay queued in the
    throwaway database and vhost, both deleted afterwards.
(b) N jobs through ONE generation_worker process (default threads) against replicate_mock with
    a fixed latency: submitted with POST /generate, timed from the first submit until every job
    is terminal (one count query every 0.5 s), bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.infra import (
    REPO_ROOT,
    Database,
    bench_database,
    bench_vhost,
    create_user,
    free_port,
    get_token,
    log,
    service,
    uvicorn_service_env,
    workdir,
)
from bench.load import HEADER, LoadOptions, LoadProcess, LoadSpec, load_row
from bench.table import markdown

GENERATE_BODY = json.dumps({"prompt": "a red fox in snow, watercolor"}).encode()
ECHO_BODY = json.dumps({"name": "Rex", "pet_type": "dog"}).encode()
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


def _gateway_env(db: Database, broker_url: str, port: int, media: Path) -> dict[str, str]:
    return {
        **uvicorn_service_env(db),
        "BROKER_URL": broker_url,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "STORAGE_BACKEND": "local",
        "STORAGE_LOCAL_ROOT": str(media),
    }


def run(
    opts: LoadOptions,
    *,
    jobs: int,
    mock_latency: float,
    timeout: float,
    output_format: str = "webp",
) -> str:
    out = _run_gateway_load(opts)
    if jobs > 0:
        out += "\n" + _run_jobs(
            opts, jobs=jobs, mock_latency=mock_latency, timeout=timeout, output_format=output_format
        )
    return out


def _run_gateway_load(opts: LoadOptions) -> str:
    with workdir() as tmp, bench_database() as db, bench_vhost() as broker_url:
        create_user(db)
        gw_port, bare_port = free_port(), free_port()
        gw_url, bare_url = f"http://127.0.0.1:{gw_port}", f"http://127.0.0.1:{bare_port}"
        env = _gateway_env(db, broker_url, gw_port, tmp / "media")
        with (
            service(
                "gateway", ["-m", "gateway"], env, cwd=tmp, logs=tmp, health_url=f"{gw_url}/healthz"
            ),
            service(
                "bare_app",
                ["-m", "bench.bare_app", "--port", str(bare_port), "--no-access-log"],
                {},
                cwd=REPO_ROOT,
                logs=tmp,
                health_url=f"{bare_url}/healthz",
            ),
            LoadProcess() as load,
        ):
            auth = (("Authorization", f"Bearer {get_token(gw_url)}"),)
            targets = [
                (
                    "bare POST /echo",
                    opts.apply(
                        LoadSpec(bare_url, "POST", ("/echo",), ECHO_BODY, ok_statuses=(201,))
                    ),
                ),
                (
                    "gateway POST /generate",
                    opts.apply(
                        LoadSpec(
                            gw_url,
                            "POST",
                            ("/generate",),
                            GENERATE_BODY,
                            headers=auth,
                            ok_statuses=(202,),
                        )
                    ),
                ),
            ]
            rows = []
            for label, spec in targets:
                log(f"generate: {label} for {opts.duration}s x {opts.connections} connections")
                rows.append(load_row(label, load.run(spec)))
    title = (
        f"generate (a): POST /generate vs bare POST, {opts.connections} connections, "
        f"{opts.duration:g} s each (after {opts.warmup:g} s warm-up), no worker"
    )
    return markdown(title, HEADER, rows)


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
    opts: LoadOptions, *, jobs: int, mock_latency: float, timeout: float, output_format: str
) -> str:
    body = json.dumps(
        {"prompt": "a red fox in snow, watercolor", "params": {"output_format": output_format}}
    ).encode()
    outcome = JobsOutcome()
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
    return _jobs_table(jobs, mock_latency, outcome, output_format)


def _jobs_table(jobs: int, mock_latency: float, o: JobsOutcome, output_format: str) -> str:
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
        f"generate (b): {jobs:,} jobs through one generation_worker process (default threads), "
        f"mock latency {mock_latency:g} s, from first submit until all terminal"
    )
    out = markdown(title, header, rows)
    out += f"\nImages: {output_format}.\n"
    if o.submit_errors:
        out += f"\n{o.submit_errors:,} submissions were not accepted (no 202).\n"
    return out
