"""Tracing headers go only to the operator's own endpoints, never baggage."""

from __future__ import annotations

from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import TracerProvider

from telemetry.propagation import OptInTraceContextPropagator, propagate_trace

tracer = TracerProvider().get_tracer(__name__)


def test_no_headers_outside_an_opt_in_block() -> None:
    headers: dict[str, str] = {}
    with tracer.start_as_current_span("root"):
        OptInTraceContextPropagator().inject(headers)
    assert headers == {}


def test_traceparent_inside_an_opt_in_block_without_baggage() -> None:
    headers: dict[str, str] = {}
    token = context.attach(baggage.set_baggage("user", "secret"))
    try:
        with tracer.start_as_current_span("root") as span, propagate_trace():
            OptInTraceContextPropagator().inject(headers)
    finally:
        context.detach(token)
    trace_id = trace.format_trace_id(span.get_span_context().trace_id)
    assert headers["traceparent"].split("-")[1] == trace_id
    assert "baggage" not in headers
