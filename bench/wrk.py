"""wrk as the load generator for the rate rows: one `wrk -t1 -cN -dTs --latency` run per round.

Method, body, headers and (for many paths) a random path per request come from a small Lua
script written to a temporary file. wrk cannot check for one exact status: every 2xx/3xx
counts as success, anything else (and every socket error) as an error.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from bench.load import LoadSpec

INSTALL_HINT = (
    "wrk not found: install it with `sudo apt-get update && sudo apt-get install -y wrk` "
    "(Debian/Ubuntu; `brew install wrk` on macOS). Falling back to bench/load.py: its figures "
    "are not comparable with the issue's, which are wrk's."
)
# Requests slower than this are dropped from wrk's latency histogram and counted as timeouts;
# well above any latency of interest, so slow requests are measured, not lost.
TIMEOUT = "10s"
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


@dataclass(frozen=True)
class Round:
    """One measured run of one target."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def wrk_path() -> str | None:
    return shutil.which("wrk")


def lua_string(text: str | bytes) -> str:
    """A Lua string literal with exactly these bytes (decimal escapes outside printable ASCII)."""
    data = text.encode() if isinstance(text, str) else text
    out = []
    for byte in data:
        if byte in (0x22, 0x5C):  # " and \
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def lua_script(spec: LoadSpec) -> str | None:
    """The script for a spec, or None when plain `wrk URL` does the same (one-path GET)."""
    lines: list[str] = []
    if spec.method != "GET":
        lines.append(f"wrk.method = {lua_string(spec.method)}")
    if spec.body is not None:
        lines.append(f"wrk.body = {lua_string(spec.body)}")
        lines.append(f'wrk.headers["Content-Type"] = {lua_string(spec.content_type)}')
    for name, value in spec.headers:
        lines.append(f"wrk.headers[{lua_string(name)}] = {lua_string(value)}")
    if len(spec.paths) > 1:
        lines.append("math.randomseed(os.time())")
        lines.append("local paths = {" + ", ".join(lua_string(p) for p in spec.paths) + "}")
        lines.append("local n = #paths")
        lines.append("request = function() return wrk.format(nil, paths[math.random(n)]) end")
    return "\n".join(lines) + "\n" if lines else None


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if match is None:
        raise ValueError(f"unknown wrk duration {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse(output: str) -> Round:
    """Read `wrk --latency` output: Requests/sec, the 50%/99% lines, counts and errors."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    total = re.search(r"^\s*(\d+) requests in ", output, re.M)
    if rps is None or total is None:
        raise ValueError(f"unexpected wrk output:\n{output}")
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.M))
    errors = 0
    if socket := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        errors += sum(int(n) for n in socket.groups())
    if non_2xx := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(non_2xx.group(1))
    return Round(
        rps=float(rps.group(1)),
        p50_ms=_ms(percentiles["50"]) if "50" in percentiles else math.nan,
        p99_ms=_ms(percentiles["99"]) if "99" in percentiles else math.nan,
        requests=int(total.group(1)),
        errors=errors,
    )


def run_round(spec: LoadSpec, *, connections: int, duration: float) -> Round:
    """`wrk -t1 -c<connections> -d<duration>s --latency` against the spec's first path."""
    wrk = wrk_path()
    if wrk is None:
        raise FileNotFoundError(INSTALL_HINT)
    seconds = max(1, round(duration))
    argv = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", TIMEOUT]
    script = lua_script(spec)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-wrk-") as lua:
        if script is not None:
            lua.write(script)
            lua.flush()
            argv += ["-s", lua.name]
        argv.append(spec.url + spec.paths[0])
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited {done.returncode}: {done.stderr or done.stdout}")
    return parse(done.stdout)
