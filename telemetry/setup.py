"""Tracing set-up and shutdown: provider, resource, exporters, instrumentation.

Spans go over OTLP/HTTP when an endpoint (or ``HONEYCOMB_API_KEY``) is configured,
and to the local SQLite store unless ``SPAN_STORE=off``; both may run at once.
Everything is bounded: the batch queue has a fixed size, export requests time
out, and shutdown waits a fixed time at most.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import INVALID_SPAN_ID, INVALID_TRACE_ID

from telemetry import drops
from telemetry.propagation import OptInTraceContextPropagator
from telemetry.spans import TraceFieldsProcessor

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 5.0
EXPORT_TIMEOUT_S = 10.0
MAX_QUEUE_SIZE = 4096
# Small batches: encoding one holds the GIL for ~2 ms, under the interpreter's 5 ms switch
# interval, so the event loop never waits a whole interval behind the export thread.
EXPORT_BATCH_SIZE = 64


def package_version() -> str:
    try:
        return version("chatops-bot")
    except PackageNotFoundError:
        return "0.0.0+unknown"


@dataclass(frozen=True)
class TelemetryConfig:
    """What tracing needs to know, taken from ``Settings`` by the caller."""

    service_name: str = "chatops-bot"
    environment: str | None = None
    otlp_endpoint: str | None = None
    otlp_headers: Mapping[str, str] | None = None
    span_store: Path | None = None
    span_store_max_age: timedelta = timedelta(days=7)
    span_store_max_bytes: int = 256 * 1024 * 1024


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a base endpoint, as the SDK derives it from the env."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


class SystemRandomIds(IdGenerator):
    """Trace and span ids from the operating system's randomness.

    The SDK's default draws from the global ``random`` module, so anything that
    seeds it (a game command calling ``random.seed``, a test framework resetting
    it per example) would make every later message repeat the same trace ids.
    """

    def generate_span_id(self) -> int:
        span_id = secrets.randbits(64)
        while span_id == INVALID_SPAN_ID:
            span_id = secrets.randbits(64)
        return span_id

    def generate_trace_id(self) -> int:
        trace_id = secrets.randbits(128)
        while trace_id == INVALID_TRACE_ID:
            trace_id = secrets.randbits(128)
        return trace_id


def build_resource(config: TelemetryConfig) -> Resource:
    attributes: dict[str, str] = {
        "service.name": config.service_name,
        "service.version": package_version(),
    }
    if config.environment:
        attributes["deployment.environment"] = config.environment
    # Resource.create also merges OTEL_RESOURCE_ATTRIBUTES.
    return Resource.create(attributes)


def build_exporters(config: TelemetryConfig) -> list[SpanExporter]:
    exporters: list[SpanExporter] = []
    if config.otlp_endpoint:
        exporters.append(
            OTLPSpanExporter(
                endpoint=traces_url(config.otlp_endpoint),
                headers=dict(config.otlp_headers or {}),
                timeout=EXPORT_TIMEOUT_S,
            )
        )
    if config.span_store is not None:
        from telemetry.store import SqliteSpanExporter

        exporters.append(
            SqliteSpanExporter(
                config.span_store,
                max_age=config.span_store_max_age,
                max_bytes=config.span_store_max_bytes,
            )
        )
    return exporters


def build_provider(
    config: TelemetryConfig,
    *,
    exporters: Sequence[SpanExporter] | None = None,
    processors: Sequence[SpanProcessor] = (),
) -> TracerProvider:
    """A provider with the trace-fields processor and one batch processor per exporter."""
    # shutdown() below bounds the wait; the SDK's own atexit shutdown would not.
    provider = TracerProvider(
        resource=build_resource(config), id_generator=SystemRandomIds(), shutdown_on_exit=False
    )
    provider.add_span_processor(TraceFieldsProcessor())
    for exporter in build_exporters(config) if exporters is None else exporters:
        provider.add_span_processor(
            BatchSpanProcessor(
                exporter,
                max_queue_size=MAX_QUEUE_SIZE,
                max_export_batch_size=EXPORT_BATCH_SIZE,
                schedule_delay_millis=1000,
            )
        )
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


_installed = False
# An interaction's token is in the path of its callback and webhook URLs, and lets
# whoever holds it answer as the bot for 15 minutes: never record it on a span.
_TOKEN_IN_PATH = re.compile(r"(/(?:interactions|webhooks)/\d+/)[^/?#]+")


def redact_url(url: object) -> str:
    """The URL as recorded on HTTP spans: interaction and webhook tokens replaced."""
    return _TOKEN_IN_PATH.sub(r"\1{token}", str(url))


def install(provider: TracerProvider) -> None:
    """Make ``provider`` global and instrument aiohttp and logging (once per process)."""
    global _installed
    trace.set_tracer_provider(provider)
    propagate.set_global_textmap(OptInTraceContextPropagator())
    if _installed:
        return
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.logging import LoggingInstrumentor

    AioHttpClientInstrumentor().instrument(url_filter=redact_url)
    LoggingInstrumentor().instrument(set_logging_format=False, inject_trace_context=True)
    drops.install()
    _installed = True


def shutdown(provider: TracerProvider, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> bool:
    """Flush and shut down within ``timeout_s``; a dead endpoint never blocks exit."""
    done = threading.Event()

    def _run() -> None:
        try:
            provider.force_flush(timeout_millis=int(timeout_s * 1000))
            provider.shutdown()
        finally:
            done.set()

    threading.Thread(target=_run, name="telemetry-shutdown", daemon=True).start()
    finished = done.wait(timeout_s)
    if not finished:
        log.warning("span export did not finish within %.1fs; some spans were dropped", timeout_s)
    return finished
