"""Report suite: `python -m report_worker --once` next to psql's COPY of the same rows.

For each size the pets table is topped up with COPY, vacuumed and analysed; then each command
runs once with STDOUT to /dev/null, timed by wall clock, its peak RSS read by /usr/bin/time.
"""

from __future__ import annotations

import asyncio
import sys

from bench.infra import PG_HOST, PG_PORT, PG_USER, Database, bench_database, log, run_measured
from bench.seed import copy_pets
from bench.table import markdown

COPY_SQL = "COPY (SELECT name, pet_type, created_at FROM pets ORDER BY created_at, id) TO STDOUT"
HEADER = ["pets", "report s", "COPY s", "report / COPY", "report peak MB", "COPY peak MB"]


def _report(db: Database) -> tuple[float, float, int]:
    env = {"DATABASE_URL": db.url, "LOG_LEVEL": "WARNING"}
    return run_measured([sys.executable, "-m", "report_worker", "--once"], env)


def _copy(db: Database) -> tuple[float, float, int]:
    args = ["psql", "-X", "-q", "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, "-d", db.name]
    return run_measured([*args, "-v", "ON_ERROR_STOP=1", "-c", COPY_SQL])


def run(sizes: list[int]) -> str:
    rows: list[list[object]] = []
    notes: list[str] = []
    with bench_database() as db:
        empty_s, empty_mb, _ = _report(db)
        loaded = 0
        for size in sizes:
            log(f"report: loading pets up to {size:,}")
            asyncio.run(copy_pets(db.dsn, loaded, size - loaded))
            loaded = size
            log(f"report: report_worker --once over {size:,} pets")
            rep_s, rep_mb, rep_rc = _report(db)
            log(f"report: psql COPY over {size:,} pets")
            copy_s, copy_mb, copy_rc = _copy(db)
            ratio = f"{rep_s / copy_s:.1f}x" if copy_s > 0 else "-"
            rows.append([size, rep_s, f"{copy_s:.2f}", ratio, rep_mb, copy_mb])
            if rep_rc or copy_rc:
                notes.append(f"{size:,} pets: report exit {rep_rc}, psql exit {copy_rc}")
    out = markdown(
        "report: one full report vs COPY of the same rows (STDOUT to /dev/null)", HEADER, rows
    )
    out += (
        f"\nBaseline: `report_worker --once` on an empty table takes {empty_s:.1f} s and "
        f"{empty_mb:.0f} MB (interpreter start-up and imports, included in every report row).\n"
        "\nIssue target: the report at 1,000,000 pets <= 5x COPY, peak RSS <= 100 MB.\n"
    )
    for note in notes:
        out += f"\n**{note}**\n"
    return out
