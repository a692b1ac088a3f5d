"""Every log record carries the trace and span id it was written in.

The contrib logging instrumentation does the same through a log record factory
but imports 2.4 MB of instrumentation machinery for it; these few lines set the
same record fields (``otelTraceID``, ``otelSpanID``, ``otelTraceSampled``,
``otelServiceName``), so log lines and traces can be matched either way.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace

_installed = False


def install(service_name: str) -> None:
    """Wrap the current log record factory (once per process)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.otelTraceID = format(context.trace_id, "032x")
            record.otelSpanID = format(context.span_id, "016x")
            record.otelTraceSampled = context.trace_flags.sampled
        else:
            record.otelTraceID = record.otelSpanID = "0"
            record.otelTraceSampled = False
        record.otelServiceName = service_name
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
