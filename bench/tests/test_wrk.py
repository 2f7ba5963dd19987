"""The wrk output parser and script writer (no wrk needed, nothing timed)."""

from __future__ import annotations

import math

import pytest

from bench.load import LoadSpec
from bench.rates import Rate
from bench.wrk import Round, lua_script, lua_string, parse

OUTPUT = """\
Running 8s test @ http://127.0.0.1:8000/pets
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    40.01ms   12.34ms   1.20s    90.00%
    Req/Sec   800.00    100.00     1.00k    70.00%
  Latency Distribution
     50%  850.00us
     75%   45.00ms
     90%   60.00ms
     99%    1.21s
  6400 requests in 8.00s, 1.23MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:    799.87
Transfer/sec:    157.00KB
"""


def test_parse_reads_rate_percentiles_and_errors() -> None:
    got = parse(OUTPUT)
    assert got == Round(rps=799.87, p50_ms=0.85, p99_ms=1210.0, requests=6400, errors=7)


def test_parse_without_error_lines() -> None:
    text = "\n".join(
        line for line in OUTPUT.splitlines() if "errors" not in line and "Non-2xx" not in line
    )
    assert parse(text).errors == 0


def test_parse_refuses_other_output() -> None:
    with pytest.raises(ValueError, match="unexpected wrk output"):
        parse("unable to connect to 127.0.0.1:1 Connection refused")


def test_lua_string_keeps_bytes() -> None:
    assert lua_string('{"a": "\\\\"}') == r'"{\"a\": \"\\\\\"}"'
    assert lua_string("é\n") == r'"\195\169\010"'


def test_plain_get_needs_no_script() -> None:
    assert lua_script(LoadSpec("http://h", "GET", ("/ping",))) is None


def test_post_script_sets_method_body_and_headers() -> None:
    spec = LoadSpec("http://h", "POST", ("/pets",), b'{"x": 1}', headers=(("Authorization", "B"),))
    script = lua_script(spec)
    assert script is not None
    assert 'wrk.method = "POST"' in script
    assert r'wrk.body = "{\"x\": 1}"' in script
    assert 'wrk.headers["Content-Type"] = "application/json"' in script
    assert 'wrk.headers["Authorization"] = "B"' in script
    assert "request = function" not in script


def test_many_paths_pick_one_per_request() -> None:
    script = lua_script(LoadSpec("http://h", "GET", ("/pets/1", "/pets/2")))
    assert script is not None
    assert 'local paths = {"/pets/1", "/pets/2"}' in script
    assert "request = function() return wrk.format(nil, paths[math.random(n)]) end" in script


def _round(rps: float) -> Round:
    return Round(rps=rps, p50_ms=rps / 10, p99_ms=math.nan, requests=1, errors=1)


def test_median_round_is_kept_whole() -> None:
    rate = Rate([_round(300), _round(100), _round(200)])
    assert rate.median == _round(200)
    assert rate.errors == 3


def test_median_of_an_even_count_is_the_lower_middle() -> None:
    assert Rate([_round(4), _round(1), _round(3), _round(2)]).median == _round(2)
