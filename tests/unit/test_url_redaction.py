"""Tokens never leave in a URL attribute, whichever instrumentation made the span.

``opentelemetry-instrument`` installs the contrib aiohttp instrumentation, and then
the bot's own HTTP spans stand down: its spans record the raw URL. These spans are
made here as it makes them (a CLIENT span with ``http.url`` / ``url.full``), outside
``telemetry/http_spans.py``.
"""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from telemetry.http_spans import UrlRedactor
from telemetry.setup import TelemetryConfig, build_provider

TOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5OnNlY3JldA"
CALLBACK = f"https://discord.com/api/v10/interactions/1234567890/{TOKEN}/callback?with_response=1"
WEBHOOK = f"https://discord.com/api/v10/webhooks/987654321/{TOKEN}/messages/@original"


def contrib_like_span(provider: object) -> None:
    tracer = provider.get_tracer("opentelemetry.instrumentation.aiohttp_client")  # type: ignore[attr-defined]
    with tracer.start_as_current_span("message"):
        span = tracer.start_span("POST", kind=SpanKind.CLIENT)
        span.set_attribute("http.method", "POST")
        span.set_attribute("http.url", CALLBACK)
        span.set_attribute("url.full", WEBHOOK)
        span.set_attribute("http.status_code", 200)
        span.end()


def test_a_token_url_made_outside_http_spans_is_redacted_before_any_sink() -> None:
    exported = InMemorySpanExporter()
    seen_by_processor = InMemorySpanExporter()
    provider = build_provider(
        TelemetryConfig(span_store=None),
        exporters=[exported],
        processors=[SimpleSpanProcessor(seen_by_processor)],
    )
    contrib_like_span(provider)
    assert provider.force_flush(5_000)
    provider.shutdown()
    for spans in (exported.get_finished_spans(), seen_by_processor.get_finished_spans()):
        (post,) = [span for span in spans if span.name == "POST"]
        assert post.attributes is not None
        assert post.attributes["http.url"] == (
            "https://discord.com/api/v10/interactions/1234567890/{token}/callback?with_response=1"
        )
        assert post.attributes["url.full"] == (
            "https://discord.com/api/v10/webhooks/987654321/{token}/messages/@original"
        )
        assert post.attributes["http.status_code"] == 200
        assert TOKEN not in repr([dict(span.attributes or {}) for span in spans])


def test_the_redactor_also_holds_for_the_sdks_own_spans() -> None:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(UrlRedactor())
    provider.add_span_processor(SimpleSpanProcessor(exported))
    contrib_like_span(provider)
    (post,) = [span for span in exported.get_finished_spans() if span.name == "POST"]
    assert post.attributes is not None
    assert TOKEN not in str(post.attributes["http.url"]) + str(post.attributes["url.full"])


def test_urls_without_tokens_are_left_alone() -> None:
    exported = InMemorySpanExporter()
    provider = build_provider(TelemetryConfig(span_store=None), exporters=[exported])
    tracer = provider.get_tracer(__name__)
    span = tracer.start_span("GET", attributes={"url.full": "https://catfact.ninja/fact"})
    span.end()
    assert provider.force_flush(5_000)
    provider.shutdown()
    (get,) = exported.get_finished_spans()
    assert get.attributes is not None and get.attributes["url.full"] == "https://catfact.ninja/fact"
