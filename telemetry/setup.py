"""Tracing set-up and shutdown: provider, resource, exporters, instrumentation.

Spans go over OTLP/HTTP when an endpoint (or ``HONEYCOMB_API_KEY``) is configured,
and to the local SQLite store unless ``SPAN_STORE=off``; both may run at once.
The provider is the lean one (``telemetry/tracer.py``) and finished traces go
through ``telemetry/span_pipeline.py``; the exporters are the SDK's (and the
store's). Everything is bounded: the pipeline holds a fixed number of spans,
export requests time out, and shutdown waits a fixed time at most.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter

from telemetry import drops, http_spans, log_context
from telemetry.http_spans import HttpSemconv
from telemetry.otlp_exporter import WireSpanExporter, requests_transport, urllib3_transport
from telemetry.propagation import OptInTraceContextPropagator
from telemetry.span_pipeline import Batching, TailSampler, TracePipeline, sink_for
from telemetry.spans import TraceFieldsProcessor
from telemetry.tracer import LeanTracerProvider

log = logging.getLogger(__name__)

# service.instance.id: one per process (unless OTEL_RESOURCE_ATTRIBUTES sets it).
INSTANCE_ID = str(uuid.uuid4())
SHUTDOWN_TIMEOUT_S = 5.0
EXPORT_TIMEOUT_S = 10.0


def package_version() -> str:
    try:
        return version("chatops-bot")
    except PackageNotFoundError:
        return "0.0.0+unknown"


@dataclass(frozen=True)
class TelemetryConfig:
    """What tracing needs to know, taken from ``Settings`` by the caller."""

    service_name: str = "chatops-bot"
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    environment: str | None = None
    otlp_endpoint: str | None = None  # a base URL: /v1/traces is appended
    otlp_traces_endpoint: str | None = None  # the full URL, used as given; wins
    console: bool = False  # OTEL_TRACES_EXPORTER=console: spans printed to stdout
    otlp_headers: Mapping[str, str] | None = None
    span_store: Path | None = None
    span_store_max_age: timedelta = timedelta(days=7)
    span_store_max_bytes: int = 256 * 1024 * 1024
    sampler: TailSampler = field(default_factory=TailSampler)
    batch: Batching = field(default_factory=Batching)
    otlp_tls: OtlpTls = field(default_factory=lambda: OtlpTls())
    otlp_via_proxy: bool = False
    # OTEL_SEMCONV_STABILITY_OPT_IN: stable HTTP names, or ``dup`` for the old ones too.
    http_semconv: HttpSemconv = "stable"


@dataclass(frozen=True)
class OtlpTls:
    """The OTLP exporter's CA bundle and client certificate (``OTEL_EXPORTER_OTLP_*``)."""

    certificate: Path | None = None
    client_key: Path | None = None
    client_certificate: Path | None = None


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a base endpoint, as the SDK derives it from the env."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


def build_resource(config: TelemetryConfig) -> Resource:
    """``OTEL_RESOURCE_ATTRIBUTES`` (from ``Settings``) with ``service.name`` resolved by the
    caller, ``service.instance.id`` and ``service.version`` unless given, the environment."""
    attributes: dict[str, str] = dict(config.resource_attributes)
    attributes["service.name"] = config.service_name
    attributes.setdefault("service.instance.id", INSTANCE_ID)
    attributes.setdefault("service.version", package_version())
    if config.environment:
        attributes["deployment.environment.name"] = config.environment
        # The pre-1.27 name, kept because queries written against it still exist.
        attributes["deployment.environment"] = config.environment
    # Resource.create adds the SDK's own attributes (and merges the process's
    # OTEL_RESOURCE_ATTRIBUTES beneath these, which Settings already parsed).
    return Resource.create(attributes)


def otlp_transport(config: TelemetryConfig) -> Any:
    """urllib3 with the SDK's certificate settings; behind a proxy, the SDK's default."""
    if config.otlp_via_proxy:
        return requests_transport()
    tls = config.otlp_tls
    return urllib3_transport(tls.certificate, tls.client_certificate, tls.client_key)


def build_exporters(config: TelemetryConfig) -> list[SpanExporter]:
    exporters: list[SpanExporter] = []
    url = config.otlp_traces_endpoint or (
        traces_url(config.otlp_endpoint) if config.otlp_endpoint else None
    )
    if url:
        exporters.append(
            WireSpanExporter(
                url,
                config.otlp_headers or {},
                EXPORT_TIMEOUT_S,
                transport=otlp_transport(config),
            )
        )
    if config.console:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        exporters.append(ConsoleSpanExporter())
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
) -> LeanTracerProvider:
    """A provider with the trace-fields processor, the trace pipeline, and ``processors``.

    ``exporters`` replaces the exporters ``config`` asks for (tests pass their own).
    """
    provider = LeanTracerProvider(resource=build_resource(config))
    # First, so no later processor or sink sees a token (spans made by any instrumentation).
    provider.add_span_processor(http_spans.UrlRedactor())
    provider.add_span_processor(TraceFieldsProcessor())
    chosen = build_exporters(config) if exporters is None else exporters
    if chosen:
        sinks = [sink_for(exporter) for exporter in chosen]
        provider.add_span_processor(
            TracePipeline(sinks, sampler=config.sampler, batch=config.batch)
        )
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


_installed = False


def install(provider: LeanTracerProvider, http_semconv: HttpSemconv = "stable") -> None:
    """Make ``provider`` global and instrument aiohttp and logging (once per process).

    ``http_semconv`` is ``TelemetryConfig.http_semconv``: which HTTP attribute names
    the HTTP spans carry.
    """
    global _installed
    trace.set_tracer_provider(provider)
    propagate.set_global_textmap(OptInTraceContextPropagator())
    if _installed:
        return
    if not provider.disabled:  # OTEL_SDK_DISABLED: no span, so no per-request hooks either
        http_spans.install(http_semconv)
    log_context.install(str(provider.resource.attributes.get("service.name", "")))
    drops.install()
    _installed = True


def shutdown(provider: LeanTracerProvider, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> bool:
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
