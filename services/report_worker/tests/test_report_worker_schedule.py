"""The schedule, driven by a fake clock: aligned ticks, no drift, missed ticks skipped."""

from __future__ import annotations

from typing import Any

import pytest

from report_worker.schedule import run_schedule


class Done(Exception):
    pass


async def run_ticks(
    clock: Any, interval: int, work_seconds: list[float]
) -> list[tuple[int, float]]:
    """Run the schedule until each entry of `work_seconds` was one tick's (fake) duration."""
    seen: list[tuple[int, float]] = []

    async def on_tick(tick: int) -> None:
        seen.append((tick, clock.now()))
        clock.advance(work_seconds[len(seen) - 1])
        if len(seen) == len(work_seconds):
            raise Done

    with pytest.raises(Done):
        await run_schedule(clock, interval, on_tick)
    return seen


async def test_ticks_land_on_multiples_of_the_interval(clock_at: Any) -> None:
    clock = clock_at(1_000_000_017.25)  # mid-interval start
    seen = await run_ticks(clock, 60, [0.5, 0.5, 0.5])
    assert [at for _, at in seen] == [1_000_000_020.0, 1_000_000_080.0, 1_000_000_140.0]
    assert [tick for tick, _ in seen] == [16_666_667, 16_666_668, 16_666_669]


async def test_a_start_exactly_on_a_tick_reports_at_once(clock_at: Any) -> None:
    clock = clock_at(600.0)
    seen = await run_ticks(clock, 60, [0, 0])
    assert [at for _, at in seen] == [600.0, 660.0]


async def test_report_duration_does_not_make_the_schedule_drift(clock_at: Any) -> None:
    clock = clock_at(0.0)
    seen = await run_ticks(clock, 60, [59.9] * 10)  # each report takes almost a minute
    assert [at for _, at in seen] == [60.0 * n for n in range(10)]


async def test_ticks_missed_by_a_slow_report_are_skipped_not_bunched(clock_at: Any) -> None:
    clock = clock_at(0.0)
    # The second report overruns two whole intervals (ends at 60 + 150 = 210).
    seen = await run_ticks(clock, 60, [1, 150, 1, 1])
    assert [at for _, at in seen] == [0.0, 60.0, 240.0, 300.0]  # 120 and 180 skipped
    assert [tick for tick, _ in seen] == [0, 1, 4, 5]


async def test_a_report_ending_exactly_on_the_next_tick_still_runs_it(clock_at: Any) -> None:
    clock = clock_at(0.0)
    seen = await run_ticks(clock, 60, [60, 0])
    assert [at for _, at in seen] == [0.0, 60.0]
