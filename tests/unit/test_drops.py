"""A full span queue is bounded, and its drops are reported once in a while, not per span."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from telemetry.drops import QUEUE_LOGGER, ExportTrouble


class StuckExporter(SpanExporter):
    """An endpoint that never answers until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(10)
        self.exported += len(spans)
        return SpanExportResult.SUCCESS


def test_a_stuck_endpoint_drops_spans_past_the_queue_and_says_so_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    trouble = ExportTrouble(interval_s=3600)
    queue_logger = logging.getLogger(QUEUE_LOGGER)
    monkeypatch.setattr(queue_logger, "filters", [trouble])
    exporter = StuckExporter()
    processor = BatchSpanProcessor(
        exporter, max_queue_size=50, max_export_batch_size=10, schedule_delay_millis=10
    )
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer(__name__)
    try:
        with caplog.at_level(logging.INFO):
            for index in range(1000):
                with tracer.start_as_current_span(f"span {index}"):
                    pass
        # At most one batch in flight plus a full queue survive; the rest are counted.
        assert trouble.dropped_total >= 1000 - 50 - 10
        assert not [r for r in caplog.records if r.getMessage().startswith("Queue full")]
        summaries = [r for r in caplog.records if "dropped" in r.getMessage()]
        assert len(summaries) == 1
        assert "the export queue is full" in summaries[0].getMessage()
    finally:
        exporter.release.set()
        provider.shutdown()


def test_failed_exports_are_summarised_per_interval() -> None:
    now = [0.0]
    trouble = ExportTrouble(interval_s=60, clock=lambda: now[0])
    record = logging.LogRecord(
        "x", logging.WARNING, __file__, 1, "Failed to export span batch code: 503", None, None
    )
    reports: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda r: reports.append(r.getMessage())  # type: ignore[method-assign]
    logging.getLogger("telemetry.drops").addHandler(handler)
    try:
        for _ in range(10):
            assert trouble.filter(record) is False
        now[0] = 61.0
        trouble.filter(record)
    finally:
        logging.getLogger("telemetry.drops").removeHandler(handler)
    assert len(reports) == 2
    assert reports[1].startswith(
        "10 export(s) failed (last: Failed to export span batch code: 503)"
    )
    assert trouble.failed_total == 11
