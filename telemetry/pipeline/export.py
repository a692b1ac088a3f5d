"""Emitting finished spans with ids and timestamps chosen by us, through the SDK's exporter.

Which SDK path, and why: pipeline spans are complete when we learn of them (a
webhook payload, a BuildKite build, a step that has exited), their timestamps
are in the past, and their ids must be the deterministic ones of ``ids``. A
tracer with a custom ``IdGenerator`` could choose ids, but the generator is one
per provider, so choosing a trace id per span would mean mutable shared state
between concurrent webhooks. Instead we build ``ReadableSpan`` objects (the SDK's
own type for finished spans) and hand them to ``OTLPSpanExporter``: the real
protobuf encoding, retries and timeout of the SDK, no tracer state, and only the
headers we give it (``telemetry.otlp_exporter``).

Three ways to send: ``export_now`` waits a bounded time and says whether it
worked (the CLI needs that), ``export_awaitable`` does the same for a coroutine
(the poller only advances its cursor after a successful export); ``BatchSink``
queues for a background thread (the webhook answers CircleCI at once and never
waits on the collector). Exports run in daemon threads, so a collector that
never answers cannot hold the process at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

from telemetry.otlp_exporter import WireSpanExporter
from telemetry.setup import TelemetryConfig, build_resource, package_version, traces_url

log = logging.getLogger(__name__)

SCOPE = InstrumentationScope("telemetry.pipeline", package_version())
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


@dataclass(frozen=True)
class PipelineSpan:
    """A finished span as the translators describe it, before it meets a resource."""

    name: str
    trace_id: int
    span_id: int
    parent_span_id: int | None
    start_ns: int
    end_ns: int
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    error: bool = False


def to_ns(timestamp: str | None) -> int | None:
    """ISO 8601 (``2021-09-01T22:49:34.317Z``) to Unix nanoseconds; None if absent or bad."""
    if not timestamp or not isinstance(timestamp, str):
        return None
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp() * 1_000_000) * 1000


def pipeline_resource(service_name: str) -> Resource:
    """The same resource as the bot's spans, with the pipeline's own service name."""
    return build_resource(TelemetryConfig(service_name=service_name))


def to_readable(span: PipelineSpan, resource: Resource) -> ReadableSpan:
    """The SDK's finished-span type, ready for any ``SpanExporter``."""
    parent = (
        SpanContext(span.trace_id, span.parent_span_id, is_remote=True, trace_flags=_SAMPLED)
        if span.parent_span_id
        else None
    )
    return ReadableSpan(
        name=span.name,
        context=SpanContext(span.trace_id, span.span_id, is_remote=False, trace_flags=_SAMPLED),
        parent=parent,
        resource=resource,
        attributes=dict(span.attributes),
        kind=SpanKind.INTERNAL,
        status=Status(StatusCode.ERROR) if span.error else Status(StatusCode.UNSET),
        start_time=span.start_ns,
        end_time=max(span.end_ns, span.start_ns),
        instrumentation_scope=SCOPE,
    )


def otlp_exporter(
    endpoint: str, headers: Mapping[str, str], timeout_s: float, *, as_given: bool = False
) -> SpanExporter:
    """OTLP/HTTP protobuf to ``endpoint`` (a base URL; ``/v1/traces`` is added unless
    ``as_given``: the bot's own traces URL, ``Settings.otlp_traces_url``, is already whole).

    It sends ``headers`` and nothing from ``OTEL_EXPORTER_OTLP_HEADERS``: the
    CircleCI exporter must not carry the main collector's key
    (``telemetry.otlp_exporter``).
    """
    return WireSpanExporter(endpoint if as_given else traces_url(endpoint), headers, timeout_s)


class TeeExporter(SpanExporter):  # type: ignore[misc]
    """Export to ``primary`` and answer with its result; copies go to ``copies`` as well.

    The in-bot receiver and poller send pipeline spans to their collector and keep a
    copy in the local span store, so ``chatops stats --service buildkite`` answers
    offline. A copy that fails is the store's own warning: it never turns a
    collector's success into a retry (the poller's cursor follows the collector).
    """

    def __init__(self, primary: SpanExporter, copies: Sequence[SpanExporter]) -> None:
        self.primary = primary
        self.copies = list(copies)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        # The local copies first: a collector retrying for seconds must not delay them.
        for copy in self.copies:
            try:
                copy.export(spans)
            except Exception:
                log.debug("copy of pipeline spans failed", exc_info=True)
        return self.primary.export(spans)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self.primary.force_flush(timeout_millis))

    def shutdown(self) -> None:
        self.primary.shutdown()
        for copy in self.copies:
            copy.shutdown()


def quiet_exporter_logs() -> None:
    """The SDK logs every retry; a CI step wants one warning of ours instead."""
    logging.getLogger("opentelemetry.exporter.otlp.proto.http").setLevel(logging.CRITICAL)
    logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter").setLevel(
        logging.CRITICAL
    )


def _start_export(
    exporter: SpanExporter, spans: Sequence[ReadableSpan], done: Callable[[bool], None]
) -> None:
    """Export in a daemon thread, then ``done(accepted)`` from that thread."""

    def _run() -> None:
        try:
            accepted = exporter.export(spans) is SpanExportResult.SUCCESS
        except Exception:
            log.debug("span export raised", exc_info=True)
            accepted = False
        done(accepted)

    threading.Thread(target=_run, name="pipeline-export", daemon=True).start()


def export_now(exporter: SpanExporter, spans: Sequence[ReadableSpan], timeout_s: float) -> bool:
    """Export and wait at most ``timeout_s``; True only if the collector accepted the spans.

    The export runs in a daemon thread so a collector that never answers cannot
    hold the caller (or process exit) beyond the bound.
    """
    if not spans:
        return True
    outcome: list[bool] = []
    finished = threading.Event()

    def done(accepted: bool) -> None:
        outcome.append(accepted)
        finished.set()

    _start_export(exporter, spans, done)
    finished.wait(timeout_s)
    return bool(outcome and outcome[0])


async def export_awaitable(
    exporter: SpanExporter, spans: Sequence[ReadableSpan], timeout_s: float
) -> bool:
    """``export_now`` for a coroutine, which may be cancelled (shutdown) at any time.

    ``asyncio.to_thread`` would leave a thread of the default executor blocked
    on the collector, and ``asyncio.run`` waits for those at exit.
    """
    if not spans:
        return True
    loop = asyncio.get_running_loop()
    result: asyncio.Future[bool] = loop.create_future()

    def settle(accepted: bool) -> None:
        if not result.done():
            result.set_result(accepted)

    def done(accepted: bool) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle, accepted)

    _start_export(exporter, spans, done)
    try:
        return await asyncio.wait_for(result, timeout_s)
    except TimeoutError:
        return False


class BatchSink:
    """A bounded background queue (the SDK's batch processor) for spans we already built."""

    def __init__(self, exporter: SpanExporter, resource: Resource) -> None:
        self.resource = resource
        self._processor = BatchSpanProcessor(
            exporter, max_queue_size=4096, schedule_delay_millis=500
        )

    def emit(self, spans: Sequence[PipelineSpan]) -> None:
        """Queue ``spans``; never blocks on the network (a full queue drops, as the SDK does)."""
        for span in spans:
            self._processor.on_end(to_readable(span, self.resource))

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Export everything queued now; blocks (call it from a thread if the receiver is local)."""
        return bool(self._processor.force_flush(int(timeout_s * 1000)))

    def close(self, timeout_s: float = 5.0) -> bool:
        """Flush what is queued within ``timeout_s``, then stop the worker."""
        done = threading.Event()

        def _run() -> None:
            try:
                self._processor.force_flush(int(timeout_s * 1000))
                self._processor.shutdown()  # type: ignore[no-untyped-call]
            finally:
                done.set()

        threading.Thread(target=_run, name="pipeline-sink-close", daemon=True).start()
        return done.wait(timeout_s)
