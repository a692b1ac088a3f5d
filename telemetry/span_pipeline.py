"""From finished spans to exporters: whole traces, a tail sampler, one flush per batch.

The SDK's ``BatchSpanProcessor`` queues each span and wakes its thread for it;
here the unit is the trace. Spans of a message wait (in memory, bounded) until
its root span ends; then the trace is kept or dropped as a whole, and a kept
trace is handed to each sink at once. A sink does its cheap per-trace work on
the caller's thread (the OTLP sink encodes each span straight to protobuf
bytes, a few microseconds, so the event loop never waits behind a thread for a
whole batch) and its I/O in the one flush thread, which wakes once a second or
when a batch is full, never per span.

Tail sampling (``TailSampler``): a trace whose root carries ``app.outcome`` is a
message, interaction or click. Every one whose outcome is not ``ok``, and every
one slower than the threshold, is kept; ``ok`` ones are kept 1 in N, chosen by
trace id so every process keeps the same traces; each span of a sampled trace
carries ``SampleRate`` = N so Honeycomb counts it N times. Other traces (start-up
calls, CI announcements) are always kept. Dropped traces are never encoded.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import TraceFlags

from telemetry import schema
from telemetry.drops import EXPORTER_LOGGER, QUEUE_LOGGER
from telemetry.otlp_wire import RequestBuilder, encode_span

log = logging.getLogger(__name__)
queue_log = logging.getLogger(QUEUE_LOGGER)
export_log = logging.getLogger(EXPORTER_LOGGER)  # summarised with failed exports
T = TypeVar("T")

MAX_OPEN_TRACES = 4096
MAX_SPANS_PER_TRACE = 512
MAX_PENDING_SPANS = 8192
MAX_DECIDED = 4096
EXPORT_BATCH_SIZE = 512  # spans per export call of an SDK exporter
FLUSH_AT_SPANS = 512  # flush before the timer when this many spans wait (the SDK's default)
SCHEDULE_DELAY_S = 1.0
SAMPLE_RATE = "SampleRate"  # Honeycomb's weight attribute: this event stands for N


@dataclass(frozen=True)
class TailSampler:
    """Which finished traces to keep: ``keep_ok_one_in`` = 1 keeps every trace."""

    keep_ok_one_in: int = 1
    slow_ms: float = 1000.0

    def rate(self, root: ReadableSpan) -> int:
        """0 to drop the trace, else the ``SampleRate`` its spans carry (1: always kept)."""
        if self.keep_ok_one_in <= 1:
            return 1
        attributes = root.attributes or {}
        if attributes.get(schema.OUTCOME, "ok") not in schema.SAMPLED_OUTCOMES:
            return 1
        start, end = root.start_time, root.end_time
        if start is not None and end is not None and (end - start) / 1e6 >= self.slow_ms:
            return 1
        if schema.OUTCOME not in attributes:
            return 1
        trace_id = root.context.trace_id if root.context is not None else 0
        bound = (1 << 64) // self.keep_ok_one_in
        return self.keep_ok_one_in if (trace_id & 0xFFFF_FFFF_FFFF_FFFF) < bound else 0


@dataclass(frozen=True)
class Batching:
    """When the flush thread sends (``OTEL_BSP_*``): every ``schedule_delay_s``, or once
    ``flush_at`` spans wait; at most ``max_pending`` wait (the rest are dropped, counted)."""

    schedule_delay_s: float = SCHEDULE_DELAY_S
    flush_at: int = FLUSH_AT_SPANS
    max_pending: int = MAX_PENDING_SPANS


class Sink(Protocol):
    """Where kept traces go: ``add`` on the caller's thread, ``flush`` in the flush thread."""

    def add(self, spans: Sequence[ReadableSpan]) -> None: ...

    def flush(self) -> None: ...

    def shutdown(self) -> None: ...


class ExporterSink:
    """Any SDK ``SpanExporter``: spans kept as they are, exported in batches when flushed."""

    def __init__(self, exporter: SpanExporter, batch_size: int = EXPORT_BATCH_SIZE) -> None:
        self.exporter = exporter
        self.batch_size = batch_size
        self._pending: list[ReadableSpan] = []
        self._lock = threading.Lock()

    def add(self, spans: Sequence[ReadableSpan]) -> None:
        with self._lock:
            self._pending.extend(spans)

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        for start in range(0, len(batch), self.batch_size):
            self._export(batch[start : start + self.batch_size])

    def _export(self, spans: Sequence[ReadableSpan]) -> None:
        try:
            result = self.exporter.export(spans)
        except Exception as exc:  # an exporter must never take the flush thread down
            log.warning("span export failed: %s", exc)
            return
        if result is not SpanExportResult.SUCCESS:
            log.debug("span export of %d spans failed", len(spans))

    def shutdown(self) -> None:
        self.exporter.shutdown()


class OtlpSink:
    """An exporter that takes serialized requests (``WireSpanExporter``), fed as traces are kept.

    Each span is encoded once, when its trace is kept, and added to the request
    being built (``telemetry/otlp_wire.py``), so a flush only joins bytes and
    sends them: the flush thread holds the GIL as briefly as it can.
    """

    def __init__(self, exporter: SpanExporter) -> None:
        if not self.supports(exporter):
            raise TypeError(f"{type(exporter).__name__} cannot send encoded requests")
        self.exporter = exporter
        self._builder = RequestBuilder()
        self._lock = threading.Lock()

    @staticmethod
    def supports(exporter: SpanExporter) -> bool:
        return callable(getattr(exporter, "export_encoded", None))

    def add(self, spans: Sequence[ReadableSpan]) -> None:
        encoded = [
            (s.resource, s.instrumentation_scope, data) for s, data in _each(encode_span, spans)
        ]
        with self._lock:
            for resource, scope, data in encoded:
                self._builder.add_encoded(resource, scope, data)

    def flush(self) -> None:
        with self._lock:
            if not len(self._builder):
                return
            request = self._builder.build()
            self._builder.clear()
        # Failures are logged by the exporter's client (summarised by telemetry/drops.py).
        self.exporter.export_encoded(request)  # type: ignore[attr-defined]

    def shutdown(self) -> None:
        self.exporter.shutdown()


class RowSink:
    """An exporter that writes rows (the span store), fed rows made as traces are kept.

    Making a row (JSON of the attributes) costs more than writing it; made here,
    a trace at a time, it never holds the GIL in the flush thread for a batch.
    """

    def __init__(self, exporter: SpanExporter) -> None:
        if not self.supports(exporter):
            raise TypeError(f"{type(exporter).__name__} cannot write rows")
        self.exporter = exporter
        self._row = exporter.row  # type: ignore[attr-defined]
        self._pending: list[object] = []
        self._lock = threading.Lock()

    @staticmethod
    def supports(exporter: SpanExporter) -> bool:
        return callable(getattr(exporter, "row", None)) and callable(
            getattr(exporter, "export_rows", None)
        )

    def add(self, spans: Sequence[ReadableSpan]) -> None:
        rows = [row for _, row in _each(self._row, spans)]
        with self._lock:
            self._pending.extend(rows)

    def flush(self) -> None:
        with self._lock:
            rows, self._pending = self._pending, []
        if rows:
            self.exporter.export_rows(rows)  # type: ignore[attr-defined]

    def shutdown(self) -> None:
        self.exporter.shutdown()


def _each(
    make: Callable[[ReadableSpan], T], spans: Sequence[ReadableSpan]
) -> list[tuple[ReadableSpan, T]]:
    """``make`` of each span; a span it fails on (a bad timestamp) is left out, not its trace."""
    made: list[tuple[ReadableSpan, T]] = []
    for span in spans:
        try:
            made.append((span, make(span)))
        except Exception as exc:
            export_log.warning("span %r left out: it cannot be encoded (%s)", span.name, exc)
    return made


def sink_for(exporter: SpanExporter) -> Sink:
    """The sink that does the most per trace and the least per flush for ``exporter``."""
    if OtlpSink.supports(exporter):
        return OtlpSink(exporter)
    if RowSink.supports(exporter):
        return RowSink(exporter)
    return ExporterSink(exporter)


class TracePipeline(SpanProcessor):
    """Buffers each trace until its local root ends, samples it, and feeds the sinks."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        sampler: TailSampler | None = None,
        batch: Batching | None = None,
        schedule_delay_s: float | None = None,
    ) -> None:
        batch = batch or Batching()
        self.sinks = tuple(sinks)
        self.sampler = sampler or TailSampler()
        self.schedule_delay_s = schedule_delay_s or batch.schedule_delay_s
        self.flush_at = batch.flush_at
        self.max_pending = batch.max_pending
        self.kept = 0
        self.dropped = 0  # past max_pending: lost, and said so (telemetry/drops.py)
        self.sampled_out = 0  # by the tail sampler: meant
        self._open: dict[int, list[ReadableSpan]] = {}
        self._decided: OrderedDict[int, int] = OrderedDict()
        self._pending = 0
        self._wake = threading.Event()
        self._flushed = threading.Condition()
        self._flush_requests = 0
        self._flushes_done = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="chatops-span-flush", daemon=True)
        self._thread.start()

    # -- SpanProcessor ------------------------------------------------------------

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        # SpanContext is a tuple: (trace_id, span_id, is_remote, flags, state, is_valid)
        if context is None or not context[3] & TraceFlags.SAMPLED:
            return
        trace_id = context[0]
        parent = span.parent
        if parent is not None and not parent[2]:
            rate = self._decided.get(trace_id)
            if rate is not None:  # a late child of a trace already decided
                if rate:
                    self._emit([span], rate)
                return
            spans = self._open.get(trace_id)
            if spans is None:
                if len(self._open) >= MAX_OPEN_TRACES:
                    # A root that never ends must not hold memory: send its oldest open trace.
                    oldest = next(iter(self._open))
                    self._emit(self._open.pop(oldest), 1)
                spans = self._open[trace_id] = []
            spans.append(span)
            if len(spans) >= MAX_SPANS_PER_TRACE:
                self._emit(self._open.pop(trace_id), 1)
                self._decide(trace_id, 1)
            return
        spans = self._open.pop(trace_id, None)
        trace = [span] if spans is None else [*spans, span]
        rate = self.sampler.rate(span)
        self._decide(trace_id, rate)
        if rate:
            self._emit(trace, rate)
        else:
            self.sampled_out += len(trace)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Flush what is pending now; False if the flush thread did not finish in time."""
        with self._flushed:
            self._flush_requests += 1
            wanted = self._flush_requests
            self._wake.set()
            return self._flushed.wait_for(
                lambda: self._flushes_done >= wanted or not self._thread.is_alive(),
                timeout_millis / 1000,
            )

    def shutdown(self) -> None:
        self._stopping = True
        self.force_flush(int(self.schedule_delay_s * 1000) + 5_000)
        for sink in self.sinks:
            try:
                sink.shutdown()
            except Exception as exc:
                log.warning("span sink shutdown failed: %s", exc)

    # -- internals ------------------------------------------------------------------

    def _decide(self, trace_id: int, rate: int) -> None:
        decided = self._decided
        decided[trace_id] = rate
        if len(decided) > MAX_DECIDED:
            decided.popitem(last=False)

    def _emit(self, spans: list[ReadableSpan], rate: int) -> None:
        if self._pending + len(spans) > self.max_pending:
            self.dropped += len(spans)
            queue_log.warning("Queue full, dropping %d span(s)", len(spans))
            return
        if rate > 1:
            for span in spans:
                attributes = getattr(span, "_attributes", None)
                if isinstance(attributes, dict):
                    attributes[SAMPLE_RATE] = rate
        for sink in self.sinks:
            sink.add(spans)
        self.kept += len(spans)
        before = self._pending
        self._pending = before + len(spans)
        if before < self.flush_at <= self._pending:
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.schedule_delay_s)
            self._wake.clear()
            with self._flushed:
                requested = self._flush_requests
            self._pending = 0
            for sink in self.sinks:
                try:
                    sink.flush()
                except Exception as exc:
                    log.warning("span flush failed: %s", exc)
            with self._flushed:
                self._flushes_done = requested
                self._flushed.notify_all()
            if self._stopping:
                return
