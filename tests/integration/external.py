"""Helpers for the tests of commands that call external APIs."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot.sandbox import FakeDiscord
from telemetry import schema
from tests.conftest import until

TRACING_HEADERS = {"traceparent", "tracestate", "baggage"}


async def exchange(
    fake: FakeDiscord,
    spans: InMemorySpanExporter,
    content: str,
    *,
    author: dict[str, Any] | None = None,
    timeout: float = 10.0,
) -> tuple[dict[str, Any], ReadableSpan]:
    """Send ``content``, wait for the reply and the finished root span; return both."""
    answer = await fake.say(content, author=author, timeout=timeout)
    assert answer is not None, f"no reply to {content!r}"
    message_id = answer["message_reference"]["message_id"]
    await until(lambda: root_or_none(spans, message_id) is not None)
    root = root_or_none(spans, message_id)
    assert root is not None
    return answer, root


def root_or_none(spans: InMemorySpanExporter, message_id: Any) -> ReadableSpan | None:
    for span in spans.get_finished_spans():
        if span.parent is None and span.attributes.get(schema.MESSAGE_ID) == str(message_id):
            return span
    return None


def children(
    spans: InMemorySpanExporter, parent: ReadableSpan, name: str | None = None
) -> list[ReadableSpan]:
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


def embed_of(answer: dict[str, Any]) -> dict[str, Any]:
    (embed,) = answer["embeds"]
    return dict(embed)
