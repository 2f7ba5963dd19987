"""`python -m bench [all|pets|report|generate] [options]`: run suites, print markdown tables.

Rates are wrk's (-t1 -c32, 8 s rounds, median of 3) as ratios to a bare FastAPI app measured
in the same run; see bench/README.md.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import time
from types import FrameType

from bench import results
from bench.infra import log
from bench.machine import describe, load_average
from bench.rates import Generator, RateOptions
from bench.wrk import INSTALL_HINT, wrk_path

SUITES = ("pets", "report", "generate")


def _sizes(text: str) -> list[int]:
    return sorted({int(part.replace("_", "")) for part in text.split(",") if part.strip()})


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through every `finally`, so cleanup still runs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("suite", nargs="?", default="all", choices=("all", *SUITES))
    rates = parser.add_argument_group("rate rows")
    rates.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    rates.add_argument("--duration", type=float, default=8.0, help="seconds a round (8)")
    rates.add_argument("--rounds", type=int, default=3, help="rounds a target; median kept (3)")
    rates.add_argument(
        "--warmup", type=float, default=1.0, help="unmeasured seconds a target first (1; 0: none)"
    )
    rates.add_argument(
        "--load-generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="auto: wrk if installed, else bench/load.py (labelled as such)",
    )
    parser.add_argument("--seed-pets", type=int, default=10_000, help="pets before the pet runs")
    parser.add_argument(
        "--report-sizes", type=_sizes, default=[100_000, 1_000_000], help="e.g. 100000,1000000"
    )
    jobs = parser.add_argument_group("jobs run")
    jobs.add_argument("--jobs", type=int, default=1000, help="jobs through one worker (0: skip)")
    jobs.add_argument(
        "--mock-latency", type=float, default=2.0, help="REPLICATE_MOCK_LATENCY_SECONDS"
    )
    jobs.add_argument("--output-format", choices=("webp", "jpg", "png"), default="jpg")
    jobs.add_argument("--megapixels", choices=("1", "0.25"), default="0.25")
    jobs.add_argument("--jobs-timeout", type=float, default=600.0, help="give up after this")
    jobs.add_argument(
        "--webhook-events",
        help="the webhooks row's REPLICATE_WEBHOOK_EVENTS_FILTER (default: the worker's, "
        "start,logs,completed)",
    )
    parser.add_argument(
        "--write-results",
        action="store_true",
        help="also write the tables into bench/RESULTS.md (between its markers)",
    )
    return parser


def _generator(choice: str) -> Generator:
    if choice == "python":
        return "python"
    if wrk_path() is None:
        if choice == "wrk":
            sys.exit(INSTALL_HINT.split(". Falling back")[0])
        print(f"**{INSTALL_HINT}**\n", flush=True)
        log(INSTALL_HINT)
        return "python"
    return "wrk"


def _run_suite(name: str, args: argparse.Namespace, opts: RateOptions) -> str:
    if name == "pets":
        from bench import pets

        return pets.run(opts, seed_pets=args.seed_pets)
    if name == "report":
        from bench import report

        return report.run(args.report_sizes)
    from bench import generate

    return generate.run(
        opts,
        jobs=args.jobs,
        mock_latency=args.mock_latency,
        timeout=args.jobs_timeout,
        output_format=args.output_format,
        megapixels=args.megapixels,
        webhook_events=args.webhook_events or generate.DEFAULT_WEBHOOK_EVENTS,
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    # Even when started in the background with SIGINT ignored, Ctrl-C/SIGINT must clean up.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    opts = RateOptions(
        connections=args.connections,
        duration=args.duration,
        rounds=args.rounds,
        warmup=args.warmup,
        generator=_generator(args.load_generator),
    )
    suites = SUITES if args.suite == "all" else (args.suite,)
    started = time.monotonic()
    command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    header = "\n".join(f"- {line}" for line in [*describe(), f"Command: `{command.strip()}`"])
    outputs = [header + "\n"]
    print(outputs[0], flush=True)
    try:
        for name in suites:
            t0 = time.monotonic()
            out = _run_suite(name, args, opts)
            outputs.append(out)
            print(out, flush=True)
            log(f"{name}: done in {time.monotonic() - t0:.0f}s")
    except KeyboardInterrupt:
        log("interrupted; cleaned up")
        return 130
    total = f"_total wall time: {time.monotonic() - started:.0f} s; at the end: {load_average()}_"
    outputs.append(total)
    print(total, flush=True)
    if args.write_results:
        results.write("\n".join(outputs))
        log(f"wrote {results.RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
