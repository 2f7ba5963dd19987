"""Traces through real processes: one job is one trace, from POST /generate through RabbitMQ
and the outbox, the worker's steps, Replicate, storage and the database, exported over
OTLP/HTTP to a collector the test runs; and without OTEL_* variables, no tracing at all."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from core.db import Database
from testkit.processes import free_port, run_process

from .conftest import Starter, wait_for_status, wait_until  # type: ignore[import-not-found]
from .test_e2e_generation import login  # type: ignore[import-not-found]

pytestmark = pytest.mark.e2e

PROMPT = "a lighthouse drawn in secret ink 7f3a"


@dataclass(frozen=True)
class Span:
    service: str
    scope: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, str]


def _text(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    return "" if kind is None else str(getattr(value, kind))


class Collector:
    """An in-memory OTLP/HTTP trace receiver (protobuf), as a collector or Jaeger runs one."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                collector.receive(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def receive(self, request: ExportTraceServiceRequest) -> None:
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _text(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        Span(
                            service=resource.get("service.name", ""),
                            scope=scope_spans.scope.name,
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            attributes={a.key: _text(a.value) for a in span.attributes},
                        )
                    )
        with self._lock:
            self.spans.extend(received)

    def trace(self, trace_id: str) -> list[Span]:
        with self._lock:
            return [span for span in self.spans if span.trace_id == trace_id]

    def describe(self) -> str:
        with self._lock:
            return "; ".join(
                f"{s.service}/{s.scope}/{s.name} t={s.trace_id[:8]} s={s.span_id[:8]} "
                f"p={s.parent_id[:8]} {s.attributes.get('job.id', '')}"
                for s in self.spans
            )

    def job_trace_id(self, job_id: str) -> str | None:
        with self._lock:
            for span in self.spans:
                if span.attributes.get("job.id") == job_id:
                    return span.trace_id
        return None


@pytest.fixture
def collector() -> Iterator[Collector]:
    collector = Collector()
    thread = threading.Thread(target=collector.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield collector
    finally:
        collector.server.shutdown()
        collector.server.server_close()


def _connected(spans: list[Span]) -> bool:
    ids = {span.span_id for span in spans}
    return all(span.parent_id in ids for span in spans if span.parent_id)


@pytest.mark.parametrize("answered_by", ["webhook", "poll"])
async def test_one_job_is_one_connected_trace_across_the_services(
    answered_by: str,
    db: Database,
    own_broker_url: str,
    collector: Collector,
    start_gateway: Starter,
    start_worker: Starter,
) -> None:
    otel = {
        "BROKER_URL": own_broker_url,
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    with start_gateway(**otel) as gateway:
        # By webhook (no polls), the webhook's step, sent from the webhook's own request,
        # must still land in the job's trace; by polls, each poll message carries it on.
        webhooks = {
            "REPLICATE_WEBHOOK_BASE_URL": gateway.base_url,
            "GENERATION_WEBHOOK_POLL_INTERVAL_SECONDS": "3600",
        }
        answer_step = "prediction_webhook" if answered_by == "webhook" else "poll_generation"
        with start_worker(**otel, **(webhooks if answered_by == "webhook" else {})):
            http = await login(db, gateway.base_url, username=f"tracy-{answered_by}")
            job_id = http.post("/generate", json={"prompt": PROMPT}).json()["job_id"]
            assert wait_for_status(http, job_id, {"succeeded", "failed"})["status"] == "succeeded"

            def complete() -> bool:
                trace_id = collector.job_trace_id(job_id)
                if trace_id is None:
                    return False
                spans = collector.trace(trace_id)
                names = {(span.service, span.name) for span in spans}
                scopes = {span.scope for span in spans}
                return (
                    {
                        ("gateway", "POST /generate"),
                        ("generation_worker", "generate_media"),
                        ("generation_worker", answer_step),
                        ("generation_worker", "storage put"),
                    }
                    <= names
                    and "opentelemetry.instrumentation.httpx" in scopes
                    and "opentelemetry.instrumentation.sqlalchemy" in scopes
                    and _connected(spans)
                )

            try:
                wait_until(complete, "the job's whole trace at the collector")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; received: {collector.describe()}") from None
            gateway_log = gateway.stderr()

    trace_id = collector.job_trace_id(job_id)
    assert trace_id is not None
    spans = collector.trace(trace_id)
    [root] = [span for span in spans if not span.parent_id]
    assert (root.service, root.name) == ("gateway", "POST /generate")
    steps = [span for span in spans if span.name in {"generate_media", answer_step}]
    assert all(span.attributes["job.id"] == job_id for span in steps)
    [generate] = [span for span in steps if span.name == "generate_media"]
    assert generate.parent_id == root.span_id  # through the outbox and RabbitMQ
    answers = [span for span in steps if span.name == answer_step]
    if answered_by == "webhook":  # the job's stored context: a child of the request
        assert {span.parent_id for span in answers} == {root.span_id}
    else:  # the first poll was published by generate_media's step, each next by the last
        assert generate.span_id in {span.parent_id for span in answers}
    replicate_calls = [s for s in spans if s.scope == "opentelemetry.instrumentation.httpx"]
    created = [
        s for s in replicate_calls if s.attributes.get("http.url", "").endswith("/predictions")
    ]
    assert created, "the prediction's create at Replicate is in the job's trace"
    worker_statements = [
        s
        for s in spans
        if s.scope == "opentelemetry.instrumentation.sqlalchemy"
        and s.service == "generation_worker"
    ]
    assert worker_statements, "the worker's statements are in the job's trace"
    # The request's log lines name the trace next to the request id.
    access_lines = [
        line
        for line in map(json.loads, filter(None, gateway_log.splitlines()))
        if line.get("msg") == "POST /generate 202"
    ]
    assert [line["trace_id"] for line in access_lines] == [trace_id]
    assert "request_id" in access_lines[0]
    # Every span the processes exported, not only this trace's: no caller content anywhere.
    for span in collector.spans:
        assert all(PROMPT not in value for value in span.attributes.values()), span


def _instrumented_without(extra_env: dict[str, str]) -> dict[str, Any]:
    """Build the gateway's app in a fresh interpreter with no OTEL_* variables (plus
    `extra_env`); report whether tracing was set up and what it imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | extra_env
    probe = (
        "import json, sys\n"
        "from gateway.app import create_app\n"
        "app = create_app()\n"
        "print(json.dumps({\n"
        "  'instrumented': bool(getattr(app, '_is_instrumented_by_opentelemetry', False)),\n"
        "  'sdk_loaded': 'opentelemetry.sdk.trace' in sys.modules,\n"
        "  'instrumentation_loaded': 'opentelemetry.instrumentation.asgi' in sys.modules,\n"
        "}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_without_otel_variables_nothing_is_traced_or_even_loaded() -> None:
    assert _instrumented_without({}) == {
        "instrumented": False,
        "sdk_loaded": False,
        "instrumentation_loaded": False,
    }
    # "none" is the standard way to say no traces, even with an endpoint set.
    off = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_TRACES_EXPORTER": "none"}
    assert _instrumented_without(off)["instrumented"] is False
    # And the probe can tell: with an exporter chosen, the app is instrumented.
    assert _instrumented_without({"OTEL_TRACES_EXPORTER": "console"})["instrumented"] is True


def test_the_pet_apis_requests_are_traced_with_their_statements(
    database_url: str, collector: Collector
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "DATABASE_URL": database_url,
        "PET_API_PORT": str(port),
        "PET_API_HOST": "127.0.0.1",
        "JWT_SECRET": "pet-api-traces-test-secret-0123456789abcdef",
        "PET_API_READS_REQUIRE_AUTH": "false",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    with run_process(["-m", "pet_api"], env, health_url=f"{base}/readyz"):
        httpx.get(f"{base}/pets", timeout=10).raise_for_status()

        def traced() -> bool:
            with collector._lock:
                requests = [s for s in collector.spans if s.name == "GET /pets"]
            if not requests:
                return False
            spans = collector.trace(requests[0].trace_id)
            return requests[0].service == "pet_api" and any(
                s.scope == "opentelemetry.instrumentation.sqlalchemy" and s.parent_id for s in spans
            )

        wait_until(traced, "GET /pets and its statement at the collector")
    # Probes are not traced: the readiness checks above never reached the collector.
    assert not [s for s in collector.spans if s.name.endswith("/readyz")]
