"""Shared fixtures: one tracer provider per test session with an in-memory exporter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot.client import ChatOpsBot
from bot.config import Settings, load_settings
from bot.harness import connected_bot
from bot.sandbox import FakeDiscord
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


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings isolated from the developer's environment files."""
    return load_settings(
        _env_file=None,
        span_store="off",
        health_port=0,
        flags_file=tmp_path / "flags.json",
        commands_file=tmp_path / "commands.toml",
        otel_exporter_otlp_endpoint=None,
        honeycomb_api_key=None,
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    """A protocol-level Discord on a free local port."""
    async with FakeDiscord() as server:
        yield server


@pytest.fixture
async def bot(
    settings: Settings, fake: FakeDiscord, spans: InMemorySpanExporter
) -> AsyncIterator[ChatOpsBot]:
    """The real bot connected to ``fake`` over sockets."""
    async with connected_bot(settings, fake) as running:
        yield running
