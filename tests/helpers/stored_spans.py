"""Span-store tests: a tracer writing real SDK spans into a store, and root spans with set times."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Tracer

from telemetry import schema
from telemetry.store import SqliteSpanExporter


@contextmanager
def store_tracer(path: Path) -> Iterator[Tracer]:
    exporter = SqliteSpanExporter(path, max_age=timedelta(days=7), max_bytes=64 * 1024 * 1024)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("test")
    provider.shutdown()


def root(
    tracer: Tracer,
    command: str,
    *,
    start_ns: int,
    duration_ms: float,
    outcome: str = schema.Outcome.OK,
    author: str = "1",
    guild: str = "9",
) -> str:
    """One root span with explicit times; returns its trace id."""
    span = tracer.start_span(
        f"{schema.ROOT_SPAN_COMMAND_PREFIX}{command}",
        start_time=start_ns,
        attributes={
            schema.COMMAND: command,
            schema.OUTCOME: str(outcome),
            schema.AUTHOR_ID: author,
            schema.GUILD_ID: guild,
        },
    )
    span.end(end_time=start_ns + int(duration_ms * 1_000_000))
    return format(span.get_span_context().trace_id, "032x")
