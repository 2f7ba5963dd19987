"""Rate rows as the issue states them: each target's req/s as a ratio to a bare app's, measured
in the same run, the median of N rounds (default: wrk -t1 -c32, 8 s rounds, median of 3).

Rounds are interleaved (round 1 of every target, then round 2, ...), so a slow spell of the
shared machine lands on every target instead of on one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Literal

from bench import wrk
from bench.infra import log
from bench.load import LoadProcess, LoadSpec
from bench.table import fmt, markdown
from bench.wrk import Round

Generator = Literal["wrk", "python"]


@dataclass(frozen=True)
class RateOptions:
    connections: int = 32
    duration: float = 8.0
    rounds: int = 3
    warmup: float = 1.0  # one unmeasured run per target before its first round
    generator: Generator = "wrk"

    def describe(self) -> str:
        rounds = f"median of {self.rounds} round{'s' if self.rounds != 1 else ''}"
        if self.generator == "wrk":
            how = f"wrk -t1 -c{self.connections} -d{self.duration:g}s"
        else:
            how = f"bench/load.py (NOT wrk), {self.connections} connections, {self.duration:g} s"
        return f"{how}, {rounds}"


@dataclass(frozen=True)
class Target:
    label: str
    spec: LoadSpec
    bare: str | None = None  # label of the bare target this row is divided by; None: bare


@dataclass
class Rate:
    rounds: list[Round] = field(default_factory=list)

    @property
    def median(self) -> Round:
        """The round with the median req/s (the lower middle one for an even count)."""
        ranked = sorted(self.rounds, key=lambda r: r.rps)
        return ranked[(len(ranked) - 1) // 2]

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.rounds)


class Runner:
    """Runs one round of one target with wrk, or with bench/load.py as the fallback."""

    def __init__(self, opts: RateOptions) -> None:
        self.opts = opts
        self._load = LoadProcess() if opts.generator == "python" else None

    def round(self, spec: LoadSpec, duration: float) -> Round:
        if self._load is None:
            return wrk.run_round(spec, connections=self.opts.connections, duration=duration)
        spec = replace(spec, connections=self.opts.connections, duration=duration, warmup=0.0)
        result = self._load.run(spec)
        return Round(result.rps, result.p50_ms, result.p99_ms, result.requests, result.errors)

    def __enter__(self) -> Runner:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._load is not None:
            self._load.close()


def measure(
    targets: Sequence[Target],
    opts: RateOptions,
    *,
    after_run: Callable[[Target], None] | None = None,
    suite: str = "rates",
) -> dict[str, Rate]:
    """Every target's rounds, interleaved; `after_run` runs after each run (e.g. a purge)."""
    rates = {t.label: Rate() for t in targets}
    with Runner(opts) as runner:
        if opts.warmup > 0:
            for target in targets:
                log(f"{suite}: warm-up {target.label} ({opts.warmup:g} s)")
                runner.round(target.spec, opts.warmup)
                if after_run is not None:
                    after_run(target)
        for n in range(1, opts.rounds + 1):
            for target in targets:
                log(f"{suite}: round {n}/{opts.rounds} {target.label} ({opts.duration:g} s)")
                rates[target.label].rounds.append(runner.round(target.spec, opts.duration))
                if after_run is not None:
                    after_run(target)
    return rates


HEADER = [
    "target",
    "req/s",
    "% of bare",
    "p50 ms",
    "p99 ms",
    "p99 / bare p99",
    "errors",
    "req/s by round",
]


def _ratio(value: float, base: float) -> float:
    return value / base if base > 0 and not math.isnan(base) else math.nan


def rate_table(
    title: str, targets: Sequence[Target], rates: dict[str, Rate], opts: RateOptions
) -> str:
    rows: list[list[object]] = []
    for target in targets:
        m = rates[target.label].median
        bare = rates[target.bare or target.label].median
        rows.append(
            [
                target.label,
                m.rps,
                100 * _ratio(m.rps, bare.rps),
                m.p50_ms,
                m.p99_ms,
                f"{fmt(_ratio(m.p99_ms, bare.p99_ms), 2)}x",
                rates[target.label].errors,
                " · ".join(fmt(r.rps, 0) for r in rates[target.label].rounds),
            ]
        )
    return markdown(f"{title} ({opts.describe()})", HEADER, rows)
