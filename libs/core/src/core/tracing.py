"""OpenTelemetry traces: one trace per job, off unless an OTLP endpoint or exporter is set.

`setup_tracing` decides once at start-up (TracingSettings); when off, nothing is imported from
the SDK or the instrumentations, no middleware is installed, and every helper here returns at
its first line. When on, the SDK configures itself from the standard OTEL_* variables
(endpoint, headers, sampler, batch delays, resource attributes) and the job's W3C context
travels: the request's `traceparent` is stored with the job (the relay publishes later, from
another task), the generate message carries it in its Dramatiq options, and each worker step
continues it and passes it on in every message it publishes.

Never put a prompt or other caller content into an attribute: spans carry ids, statuses and
sizes only.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from core.settings import TracingSettings

if TYPE_CHECKING:
    import httpx
    from fastapi import FastAPI
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
# Health probes and scrapes are noise, not requests anybody follows.
UNTRACED_URLS = "healthz,readyz,metrics"


_enabled = False


def enabled() -> bool:
    return _enabled


def setup_tracing(service: str, settings: TracingSettings | None = None) -> bool:
    """Once per process, before any client or app is built: install the tracer provider
    (OTLP over HTTP, batched) if tracing is configured. Returns whether it is on."""
    global _enabled
    if _enabled:
        return True
    settings = settings or TracingSettings()
    if not settings.enabled:
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    exporter: SpanExporter
    if settings.otel_traces_exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        exporter = ConsoleSpanExporter()
    else:  # "otlp" (the default), over HTTP/protobuf
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; this service's
    # own name is the default. The sampler comes from OTEL_TRACES_SAMPLER(_ARG).
    resource = Resource.create({SERVICE_NAME: settings.otel_service_name or service})
    # The provider flushes its batch at exit (its own atexit hook).
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _enabled = True
    log.info("tracing on", extra={"otel_service_name": resource.attributes[SERVICE_NAME]})
    return True


# --- instrumentation, each a no-op when tracing is off ---------------------------------------


def instrument_app(app: FastAPI) -> None:
    """A server span per request (FastAPI/ASGI), continuing an incoming `traceparent`."""
    if not _enabled:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, excluded_urls=UNTRACED_URLS, exclude_spans=["receive", "send"]
    )


def instrument_engine(engine: AsyncEngine) -> None:
    """A client span per SQL statement (its text with placeholders, never the values). Once
    per process (the instrumentor is a singleton): every service has one engine.
    The instrumentation declares SQLAlchemy < 2.1 and would silently do nothing with our 2.1;
    the engine events it listens to are unchanged, as tests/test_e2e_traces.py proves."""
    if not _enabled:
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine, skip_dep_check=True)


def instrument_http_client(client: httpx.AsyncClient) -> None:
    """A client span per request of this one client (the Replicate API's), carrying the
    context in `traceparent`. Only chosen clients: callers' webhook URLs may hold secrets."""
    if not _enabled:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client)


# --- the job's context ------------------------------------------------------------------------


def current_traceparent() -> str | None:
    """The active span's W3C `traceparent` (stored with a new job), or None."""
    if not _enabled:
        return None
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get(TRACEPARENT)


def inject(carrier: MutableMapping[str, Any]) -> None:
    """Put the active context into `carrier` (a message's options): `traceparent`, and
    `tracestate` when there is one."""
    if not _enabled:
        return
    from opentelemetry.propagate import inject as propagate

    propagate(carrier)


def current_trace_id() -> str | None:
    """The active span's trace id (32 hex digits), for log lines; None if none is recording."""
    if not _enabled:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, str | int]) -> Iterator[None]:
    """An internal span under the active one (a storage put, say)."""
    if not _enabled:
        yield
        return
    from opentelemetry import trace

    with trace.get_tracer("core").start_as_current_span(name, attributes=attributes):
        yield


@contextlib.contextmanager
def job_step(
    actor: str, job_id: str, carrier: MutableMapping[str, Any] | None, trace_parent: str | None
) -> Iterator[None]:
    """A consumer span for one run of a worker actor, in the job's trace: the context in the
    message's options (`carrier`), else the job's stored `trace_parent`, which is then written
    into the options, so Dramatiq's retries of this message carry it on."""
    if not _enabled:
        yield
        return
    from opentelemetry import trace
    from opentelemetry.propagate import extract

    if carrier is not None and TRACEPARENT not in carrier and trace_parent is not None:
        carrier[TRACEPARENT] = trace_parent
    parent = extract(carrier if carrier is not None else {TRACEPARENT: trace_parent or ""})
    tracer = trace.get_tracer("generation_worker")
    with tracer.start_as_current_span(
        actor,
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        attributes={"job.id": job_id, "messaging.system": "rabbitmq"},
    ):
        yield


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    """No spans for what runs inside (the read of a job's stored context, which would be a
    stray trace of its own)."""
    if not _enabled:
        yield
        return
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        yield


def needs_stored_context(carrier: MutableMapping[str, Any] | None) -> bool:
    """Whether a step must read its job's stored context first: tracing is on and the message
    carries none (a Replicate webhook or a cancel, sent from other requests' traces)."""
    return _enabled and (carrier is None or TRACEPARENT not in carrier)
