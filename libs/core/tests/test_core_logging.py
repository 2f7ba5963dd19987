"""Structured logs: exactly one JSON object per line on STDERR, context ids included."""

from __future__ import annotations

import json
import logging
import sys
import threading
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from core.logging import configure_logging, job_id_var, request_id_var


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    named = {name: logging.getLogger(name) for name in ("dramatiq", "pika", "uvicorn")}
    saved_named = {name: (lg.handlers[:], lg.propagate, lg.level) for name, lg in named.items()}
    saved_hooks = (sys.excepthook, threading.excepthook)
    yield
    sys.excepthook, threading.excepthook = saved_hooks
    logging.captureWarnings(False)
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    for name, (handlers, propagate, level) in saved_named.items():
        named[name].handlers[:] = handlers
        named[name].propagate = propagate
        named[name].setLevel(level)


def json_lines(err: str) -> list[dict[str, Any]]:
    """Every line must be a JSON object: a raw traceback line would fail here."""
    return [json.loads(line) for line in err.splitlines()]


def test_one_json_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("svc-test", "INFO")
    log = logging.getLogger("core.test")
    log.info("hello %s", "world")
    log.debug("hidden below INFO")
    log.warning("two\nlines")
    records = json_lines(capsys.readouterr().err)
    assert [(r["level"], r["msg"]) for r in records] == [
        ("INFO", "hello world"),
        ("WARNING", "two\nlines"),
    ]
    for record in records:
        assert record["service"] == "svc-test"
        assert record["logger"] == "core.test"
        assert "request_id" not in record
        assert "job_id" not in record
        assert record["ts"].endswith("+00:00")  # timezone-aware UTC


def test_context_ids_and_extra_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("svc-test", "INFO")
    log = logging.getLogger("core.test")
    job_id = uuid.uuid4()
    request_token = request_id_var.set("req-123")
    job_token = job_id_var.set(str(job_id))
    try:
        log.info("working", extra={"attempt": 2, "owner_id": job_id})
    finally:
        job_id_var.reset(job_token)
        request_id_var.reset(request_token)
    log.info("after")
    first, second = json_lines(capsys.readouterr().err)
    assert first["request_id"] == "req-123"
    assert first["job_id"] == str(job_id)
    assert first["attempt"] == 2
    assert first["owner_id"] == str(job_id)  # non-JSON values are stringified, not dropped
    assert "request_id" not in second
    assert "job_id" not in second


def test_exception_stays_inside_the_json(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("svc-test", "INFO")
    log = logging.getLogger("core.test")
    try:
        raise RuntimeError("kaboom")
    except RuntimeError:
        log.exception("it failed")
    (record,) = json_lines(capsys.readouterr().err)
    assert record["level"] == "ERROR"
    assert record["msg"] == "it failed"
    assert record["exc_type"] == "RuntimeError"
    assert record["exc"].startswith("Traceback")
    assert "RuntimeError: kaboom" in record["exc"]


def test_library_loggers_go_through_the_json_handler(capsys: pytest.CaptureFixture[str]) -> None:
    stray = logging.StreamHandler()
    logging.getLogger("dramatiq").addHandler(stray)  # as a library might do
    configure_logging("svc-test", "DEBUG")
    logging.getLogger("dramatiq.worker").info("from dramatiq")
    logging.getLogger("uvicorn.error").info("from uvicorn")
    logging.getLogger("pika.connection").info("pika chatter is quiet")
    records = json_lines(capsys.readouterr().err)
    assert [(r["logger"], r["msg"]) for r in records] == [
        ("dramatiq.worker", "from dramatiq"),
        ("uvicorn.error", "from uvicorn"),
    ]
    assert stray not in logging.getLogger("dramatiq").handlers


def test_reconfiguring_does_not_duplicate_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("svc-test", "INFO")
    configure_logging("svc-test", "INFO")
    logging.getLogger("core.test").info("once")
    assert len(json_lines(capsys.readouterr().err)) == 1


def test_python_warnings_become_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("svc-test", "INFO")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("something is deprecated", UserWarning, stacklevel=1)
    (record,) = json_lines(capsys.readouterr().err)
    assert record["level"] == "WARNING"
    assert "something is deprecated" in record["msg"]


def test_uncaught_exceptions_become_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("svc-test", "INFO")
    try:
        raise ValueError("escaped")
    except ValueError:
        sys.excepthook(*sys.exc_info())  # what the interpreter calls for an uncaught exception
    (record,) = json_lines(capsys.readouterr().err)
    assert record["level"] == "CRITICAL"
    assert "ValueError: escaped" in record["exc"]
