"""Trace context goes only where the operator wants it.

The HTTP spans (``telemetry/http_spans.py``) inject headers on every request
through the global propagator. Discord and public third-party APIs must receive no tracing
headers, while the operator's own endpoints (HTTP-backed commands) should get a
``traceparent`` so their spans join the bot's trace. This propagator injects only
inside ``propagate_trace()``, and never baggage.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import CarrierT, Setter, default_setter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_ALLOW_KEY = otel_context.create_key("chatops.propagate-trace")


class OptInTraceContextPropagator(TraceContextTextMapPropagator):
    """W3C trace context that is injected only where ``propagate_trace()`` allows it."""

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        if not otel_context.get_value(_ALLOW_KEY, context):
            return
        super().inject(carrier, context, setter)


@contextmanager
def propagate_trace() -> Iterator[None]:
    """Send ``traceparent`` on the HTTP requests made inside this block."""
    token = otel_context.attach(otel_context.set_value(_ALLOW_KEY, True))
    try:
        yield
    finally:
        otel_context.detach(token)
