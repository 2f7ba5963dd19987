"""`python -m bench [all|pets|report|generate] [options]`: run suites, print markdown tables."""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import time
from datetime import UTC, datetime
from types import FrameType

from bench.infra import log
from bench.load import LoadOptions

SUITES = ("pets", "report", "generate")


def _sizes(text: str) -> list[int]:
    return sorted({int(part.replace("_", "")) for part in text.split(",") if part.strip()})


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through every `finally`, so cleanup still runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("suite", nargs="?", default="all", choices=("all", *SUITES))
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections")
    parser.add_argument("--seed-pets", type=int, default=10_000, help="pets before the pet runs")
    parser.add_argument(
        "--report-sizes", type=_sizes, default=[100_000, 1_000_000], help="e.g. 100000,1000000"
    )
    parser.add_argument("--jobs", type=int, default=1000, help="jobs through one worker")
    parser.add_argument(
        "--mock-latency", type=float, default=2.0, help="REPLICATE_MOCK_LATENCY_SECONDS"
    )
    parser.add_argument(
        "--output-format",
        choices=("webp", "jpg", "png"),
        default="webp",
        help="image format of the jobs run (the mock spends ~70 ms of CPU per 1 MP webp)",
    )
    parser.add_argument(
        "--jobs-timeout", type=float, default=600.0, help="give up on the jobs run after this"
    )
    args = parser.parse_args(argv)
    opts = LoadOptions(duration=args.duration, connections=args.connections, warmup=args.warmup)
    signal.signal(signal.SIGTERM, _on_sigterm)
    # Even when started in the background with SIGINT ignored, Ctrl-C/SIGINT must clean up.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    suites = SUITES if args.suite == "all" else (args.suite,)
    started = time.monotonic()
    print(
        f"## bench {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {platform.node()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}\n",
        flush=True,
    )
    try:
        for name in suites:
            t0 = time.monotonic()
            if name == "pets":
                from bench import pets

                out = pets.run(opts, seed_pets=args.seed_pets)
            elif name == "report":
                from bench import report

                out = report.run(args.report_sizes)
            else:
                from bench import generate

                out = generate.run(
                    opts,
                    jobs=args.jobs,
                    mock_latency=args.mock_latency,
                    timeout=args.jobs_timeout,
                    output_format=args.output_format,
                )
            print(out, flush=True)
            log(f"{name}: done in {time.monotonic() - t0:.0f}s")
    except KeyboardInterrupt:
        log("interrupted; cleaned up")
        return 130
    print(f"_total wall time: {time.monotonic() - started:.0f} s_", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
