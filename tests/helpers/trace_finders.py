"""Finished spans by what started them: a message, an interaction, a parent. No waiting."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv.attributes.http_attributes import HTTP_REQUEST_METHOD
from opentelemetry.semconv.attributes.url_attributes import URL_FULL

from telemetry import schema

# The headers that carry trace context on an outgoing HTTP call.
TRACING_HEADERS = {"traceparent", "tracestate", "baggage"}


def roots(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    """Every finished root span, oldest first."""
    found = [s for s in spans.get_finished_spans() if s.parent is None]
    return sorted(found, key=lambda s: s.start_time or 0)


def message_root(spans: InMemorySpanExporter, message_id: Any) -> ReadableSpan | None:
    """The root span of the message with ``message_id``, once it has finished."""
    for span in spans.get_finished_spans():
        if span.parent is None and span.attributes.get(schema.MESSAGE_ID) == str(message_id):
            return span
    return None


def root_of(spans: InMemorySpanExporter, message: dict[str, Any]) -> ReadableSpan:
    """The one root span of ``message`` (a message the fake sent), which must have finished."""
    found = [
        s
        for s in spans.get_finished_spans()
        if s.parent is None and s.attributes.get(schema.MESSAGE_ID) == str(message["id"])
    ]
    assert len(found) == 1, found
    return found[0]


def interaction_root(spans: InMemorySpanExporter, interaction_id: int) -> ReadableSpan | None:
    """The root span of the interaction with ``interaction_id``, once it has finished."""
    for span in spans.get_finished_spans():
        if span.parent is None and span.attributes.get(schema.INTERACTION_ID) == str(
            interaction_id
        ):
            return span
    return None


def children(
    spans: InMemorySpanExporter, parent: ReadableSpan, name: str | None = None
) -> list[ReadableSpan]:
    """The finished children of ``parent`` (named ``name``, if given), oldest first."""
    found = [
        s
        for s in spans.get_finished_spans()
        if s.parent is not None and s.parent.span_id == parent.context.span_id
    ]
    found.sort(key=lambda s: s.start_time or 0)
    return [s for s in found if name is None or s.name == name]


def only_child(spans: InMemorySpanExporter, parent: ReadableSpan, name: str) -> ReadableSpan:
    (span,) = children(spans, parent, name)
    return span


def trace_id(span: ReadableSpan) -> str:
    return f"{span.context.trace_id:032x}"


def attempts(spans: InMemorySpanExporter, send: ReadableSpan) -> list[ReadableSpan]:
    """The HTTP attempts of a ``discord.send``, in order: the retried ones (its CLIENT
    children of the same request), then the send span itself, which is the last."""
    method, url = send.attributes[HTTP_REQUEST_METHOD], send.attributes[URL_FULL]
    earlier = [
        s
        for s in children(spans, send)
        if s.attributes.get(HTTP_REQUEST_METHOD) == method and s.attributes.get(URL_FULL) == url
    ]
    return [*earlier, send]
