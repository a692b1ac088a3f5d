"""The last few traces, kept in memory so the sandbox console can show each message's trace."""

from __future__ import annotations

from collections import OrderedDict

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

MAX_TRACES = 256


class RecentTraces(SpanProcessor):
    """Finished spans grouped by trace id; the oldest traces are dropped past ``max_traces``."""

    def __init__(self, max_traces: int = MAX_TRACES) -> None:
        self.max_traces = max_traces
        self._traces: OrderedDict[int, list[ReadableSpan]] = OrderedDict()

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is None:
            return
        trace_id = span.context.trace_id
        self._traces.setdefault(trace_id, []).append(span)
        self._traces.move_to_end(trace_id)
        while len(self._traces) > self.max_traces:
            self._traces.popitem(last=False)

    def find_root(self, key: str, value: str) -> ReadableSpan | None:
        """The finished root span whose attribute ``key`` equals ``value``."""
        for spans in reversed(self._traces.values()):
            for span in spans:
                if span.parent is None and span.attributes and span.attributes.get(key) == value:
                    return span
        return None

    def spans_of(self, trace_id: int) -> list[ReadableSpan]:
        return list(self._traces.get(trace_id, []))
