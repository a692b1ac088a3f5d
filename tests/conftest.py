"""Shared fixtures: one tracer provider per test session with an in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from telemetry.setup import TelemetryConfig, build_provider, install

_exporter = InMemorySpanExporter()
install(
    build_provider(
        TelemetryConfig(span_store=None), exporters=[], processors=[SimpleSpanProcessor(_exporter)]
    )
)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The spans finished during one test."""
    _exporter.clear()
    yield _exporter
    _exporter.clear()
