"""The real `python -m report_worker` process: --once, signals, several replicas."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from core.db import Database
from testkit.processes import ServiceProcess, free_port, run_process

pytestmark = pytest.mark.e2e

HEADER = re.compile(r"^Pet directory report  (\S+ \S+) UTC$", re.MULTILINE)


def wait_for(condition: Callable[[], bool], proc: ServiceProcess, timeout: float = 20) -> None:
    """Poll until `condition()` holds; fail (with the child's STDERR) if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met; stderr:\n{proc.stderr()}")
        time.sleep(0.02)


def exit_code(proc: ServiceProcess, timeout: float) -> int:
    """The exit code, or a failure if the process is still running after `timeout`."""
    try:
        return proc.popen.wait(timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {timeout}s after the signal; stderr:\n{proc.stderr()}")


async def test_once_prints_one_report_and_exits_0(
    db: Database, env_for: Any, insert_pets: Callable[..., Awaitable[Any]]
) -> None:
    await insert_pets([("Rex", "dog", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))])
    with run_process(["-m", "report_worker", "--once"], env_for()) as proc:
        assert exit_code(proc, 30) == 0
        out = proc.stdout()
    assert len(HEADER.findall(out)) == 1
    assert "Rex                               dog      2026-01-02 03:04:05\n" in out
    assert out.endswith("End of report: 1 pet.\n")


def test_once_with_the_database_down_exits_1_with_one_clear_line(env_for: Any) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing"
    with run_process(["-m", "report_worker", "--once"], env_for(DATABASE_URL=url)) as proc:
        assert exit_code(proc, 30) == 1
        err_lines = proc.stderr().splitlines()
        assert proc.stdout() == ""
    assert len(err_lines) == 1
    entry = json.loads(err_lines[0])
    assert entry["level"] == "ERROR"
    assert entry["msg"].startswith("report failed: ConnectionRefusedError")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_while_waiting_for_the_next_tick_exits_0(env_for: Any, sig: int) -> None:
    env = env_for(REPORT_INTERVAL_SECONDS="3600")
    with run_process(["-m", "report_worker"], env) as proc:
        wait_for(lambda: "report worker started" in proc.stderr(), proc)
        proc.signal(sig)
        assert exit_code(proc, 5) == 0
        assert "report worker stopped" in proc.stderr()
        assert "Traceback" not in proc.stderr()


async def test_sigterm_in_the_middle_of_a_report_exits_0(db: Database, env_for: Any) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO pets (id, name, pet_type)"
                " SELECT gen_random_uuid(), 'pet ' || g, 'cat' FROM generate_series(1, 30000) g"
            )
        )
    # One row per round trip: the report takes seconds, long enough to interrupt.
    env = env_for(REPORT_PAGE_SIZE="1")
    with run_process(["-m", "report_worker", "--once"], env) as proc:
        wait_for(lambda: "pet " in proc.stdout(), proc)
        proc.signal(signal.SIGTERM)
        assert exit_code(proc, 5) == 0
        out = proc.stdout()
        assert "Traceback" not in proc.stderr()
    assert "End of report" not in out
    assert out.endswith("!! Report incomplete (stopped); the next report starts over.\n")


async def test_two_replicas_print_each_tick_exactly_once(
    db: Database, env_for: Any, insert_pets: Callable[..., Awaitable[Any]]
) -> None:
    await insert_pets([("Rex", "dog", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))])
    env = env_for(REPORT_INTERVAL_SECONDS="1")
    with (
        run_process(["-m", "report_worker"], env) as a,
        run_process(["-m", "report_worker"], env) as b,
    ):
        for proc in (a, b):
            wait_for(lambda p=proc: "report worker started" in p.stderr(), proc)
        # Both are in their loops now: every tick from here on is contested.
        both_running_at = time.time()

        def ticks_after_start() -> list[str]:
            found = HEADER.findall(a.stdout()) + HEADER.findall(b.stdout())
            stamps = [datetime.fromisoformat(t + "+00:00").timestamp() for t in found]
            return [t for t, s in zip(found, stamps, strict=True) if s > both_running_at]

        wait_for(lambda: len(set(ticks_after_start())) >= 3, a)
        assert a.stop() == 0
        assert b.stop() == 0
        counts = Counter(HEADER.findall(a.stdout()) + HEADER.findall(b.stdout()))

    assert counts, "no report printed"
    assert max(counts.values()) == 1, f"a tick was printed twice: {counts}"
    stamps = sorted(int(datetime.fromisoformat(t + "+00:00").timestamp()) for t in counts)
    assert stamps == list(range(stamps[0], stamps[-1] + 1)), "a tick was missed"


def scrape(port: int) -> dict[str, float]:
    """The report worker's metrics, sample name (with labels) -> value."""
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        sample.name + json.dumps(sample.labels, sort_keys=True): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


async def test_metrics_show_the_last_report_for_an_alert(
    db: Database, env_for: Any, insert_pets: Callable[..., Awaitable[Any]]
) -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    await insert_pets([("Rex", "dog", moment), ("Tom", "cat", moment)])
    port = free_port()
    env = env_for(REPORT_INTERVAL_SECONDS="1", REPORT_METRICS_PORT=str(port))
    started = time.time()
    with run_process(["-m", "report_worker"], env) as proc:
        printed = 'report_ticks_total{"outcome": "printed"}'

        def reported() -> bool:
            try:
                return scrape(port).get(printed, 0) >= 1
            except httpx.HTTPError:
                return False  # not listening yet

        wait_for(reported, proc)
        metrics = scrape(port)
        assert proc.stop() == 0
    assert metrics["report_last_rows{}"] == 2
    assert 0 < metrics["report_last_duration_seconds{}"] < 60
    assert started <= metrics["report_last_success_timestamp_seconds{}"] <= time.time()
