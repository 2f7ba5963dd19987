"""The report's text: exact layout, empty directory, long names, streaming output."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import text

from core.db import Database
from report_worker.columns import display_width
from report_worker.output import BATCH_CHARS
from report_worker.settings import ReportWorkerSettings
from report_worker.worker import ReportWorker

NOON = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC).timestamp()


class RecordingStream(io.StringIO):
    """A STDOUT stand-in that remembers the size of every write and every flush."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[int] = []
        self.flushes = 0

    def write(self, s: str) -> int:
        self.writes.append(len(s))
        return super().write(s)

    def flush(self) -> None:
        self.flushes += 1


async def report(db: Database, clock_at: Any, page_size: int = 2) -> RecordingStream:
    settings = ReportWorkerSettings(database_url="unused://", report_page_size=page_size)
    out = RecordingStream()
    worker = ReportWorker(db=db, settings=settings, out=out, clock=clock_at(NOON))
    assert await worker.run_once()
    return out


EXPECTED = """\
==================================================================
Pet directory report  2026-11-24 12:00:00 UTC
Total pets: 4

By type:
  cat      1
  dog      1
  bird     1
  fish     1
  rabbit   0
  hamster  0
  reptile  0
  other    0

Name                              Type     Created (UTC)
--------------------------------  -------  -------------------
Nemo                              fish     2025-12-31 21:59:59
Rex                               dog      2026-01-02 03:04:05
Whiskers                          cat      2026-01-02 03:04:05
Polly                             bird     2026-03-04 05:06:07
End of report: 4 pets.
"""


async def test_report_text_is_exact(
    db: Database, clock_at: Any, insert_pets: Callable[..., Awaitable[Any]]
) -> None:
    same_time = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    await insert_pets(
        [
            ("Polly", "bird", datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)),
            ("Rex", "dog", same_time),  # same created_at as Whiskers: the id breaks the tie
            ("Whiskers", "cat", same_time),
            # Stored with a +02:00 offset, shown in UTC: the previous day.
            (
                "Nemo",
                "fish",
                datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=timezone(timedelta(hours=2)))
                - timedelta(seconds=1),
            ),
        ]
    )
    out = await report(db, clock_at)
    assert out.getvalue() == EXPECTED
    assert out.flushes >= 1  # a report is flushed, not left in a buffer


async def test_empty_directory_gets_a_friendly_line(db: Database, clock_at: Any) -> None:
    out = await report(db, clock_at)
    assert out.getvalue() == (
        "==================================================================\n"
        "Pet directory report  2026-11-24 12:00:00 UTC\n"
        "Total pets: 0\n"
        "\n"
        "By type:\n"
        "  cat      0\n"
        "  dog      0\n"
        "  bird     0\n"
        "  fish     0\n"
        "  rabbit   0\n"
        "  hamster  0\n"
        "  reptile  0\n"
        "  other    0\n"
        "\n"
        "No pets yet — add one with POST /pets.\n"
        "End of report: 0 pets.\n"
    )


async def test_long_and_odd_names_keep_the_columns_aligned(
    db: Database, clock_at: Any, insert_pets: Callable[..., Awaitable[Any]]
) -> None:
    t = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
    names = [
        "A" * 32,  # fits exactly
        "B" * 33,  # one too many
        "Sir Reginald Fluffington-Smythe the Third of Catford" + "!" * 48,  # 100, the maximum
        "猫" * 20,  # wide characters take two columns each
        "Line\nbreak\tand tab",
    ]
    await insert_pets([(name, "cat", t) for name in names])
    lines = (await report(db, clock_at)).getvalue().splitlines()
    rows = lines[lines.index("-" * 32 + "  -------  -------------------") + 1 : -1]
    suffix = "  cat      2026-05-06 07:08:09"
    name_cells = []
    for row in rows:
        assert row.endswith(suffix)
        name_cells.append(row[: -len(suffix)])
    assert [display_width(c) for c in name_cells] == [32] * len(names)
    assert name_cells[0] == "A" * 32
    assert name_cells[1] == "B" * 31 + "…"
    assert name_cells[2] == "Sir Reginald Fluffington-Smythe…"
    assert name_cells[3] == "猫" * 15 + "… "  # 30 columns of cats, the ellipsis, one pad
    assert name_cells[4] == "Line break and tab".ljust(32)


async def test_big_directory_is_streamed_in_batches(db: Database, clock_at: Any) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO pets (id, name, pet_type, created_at, updated_at)"
                " SELECT gen_random_uuid(), 'pet ' || lpad(g::text, 5, '0'), 'dog',"
                " timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second', now()"
                " FROM generate_series(1, 5000) AS g"
            )
        )
    out = await report(db, clock_at, page_size=100)
    text_out = out.getvalue()
    rows = [line for line in text_out.splitlines() if line.startswith("pet ")]
    assert [r.split()[1] for r in rows] == [f"{i:05d}" for i in range(1, 5001)]  # oldest first
    assert text_out.endswith("End of report: 5,000 pets.\n")
    # The output went out in bounded batches: the whole report never was one string. A batch
    # ends with the chunk that filled it: at most one page of rows (100 here) past the mark.
    assert len(out.writes) > 3
    assert max(out.writes) < BATCH_CHARS + 100 * len(rows[0] + "\n") + 200


async def test_page_size_does_not_change_the_text(
    db: Database, clock_at: Any, insert_pets: Callable[..., Awaitable[Any]]
) -> None:
    t = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
    odd = ["C" * 40, "猫" * 17, "Tab\there", "Zoë", "Cafe\u0301 au lait"]
    kinds = ["cat", "dog", "bird", "fish", "rabbit", "hamster", "reptile", "other"]
    await insert_pets(
        [(f"pet {i}", kinds[i % len(kinds)], t + timedelta(seconds=i)) for i in range(12)]
        + [(name, "other", t + timedelta(days=1)) for name in odd]
    )
    whole = (await report(db, clock_at, page_size=1000)).getvalue()  # one page
    assert whole.endswith("End of report: 17 pets.\n")
    for page_size in (1, 2, 5, 16, 17):  # pages that divide the 17 rows and pages that do not
        assert (await report(db, clock_at, page_size=page_size)).getvalue() == whole
