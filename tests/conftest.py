"""Shared fixtures: an in-memory span exporter, settings, the fake Discord, the real bot, fake APIs.

Helpers (functions a test calls) live in ``tests/helpers``.
"""

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
from tests.fakes.catfact import FakeCatFacts
from tests.fakes.function import FakeFunction
from tests.fakes.scryfall import FakeScryfall
from tests.helpers.captured_spans import EXPORTER as _exporter
from tests.helpers.chatops_process import closed_port

install(
    build_provider(
        TelemetryConfig(span_store=None), exporters=[], processors=[SimpleSpanProcessor(_exporter)]
    )
)


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    """The process-wide in-memory exporter (not cleared between tests)."""
    return _exporter


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
        circleci_state_db=tmp_path / "circleci.db",
        otel_exporter_otlp_endpoint=None,
        honeycomb_api_key=None,
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    """A protocol-level Discord on a free local port."""
    async with FakeDiscord(heartbeat_interval_ms=5_000) as server:
        yield server


@pytest.fixture
async def bot(
    settings: Settings, fake: FakeDiscord, spans: InMemorySpanExporter
) -> AsyncIterator[ChatOpsBot]:
    """The real bot connected to ``fake`` over sockets."""
    async with connected_bot(settings, fake, guild_ready_timeout=0.05) as running:
        yield running


# -- fake external APIs (issue 3) -----------------------------------------


@pytest.fixture
async def catfact_api() -> AsyncIterator[FakeCatFacts]:
    """The public cat-fact API, faked on a free local port."""
    async with FakeCatFacts() as server:
        yield server


@pytest.fixture
async def scryfall_api() -> AsyncIterator[FakeScryfall]:
    """Scryfall's card API, faked on a free local port."""
    async with FakeScryfall() as server:
        yield server


@pytest.fixture
async def function_api() -> AsyncIterator[FakeFunction]:
    """An operator's own endpoint (an Azure Function), faked on a free local port."""
    async with FakeFunction() as server:
        yield server


@pytest.fixture
def unused_port() -> int:
    """A local port nothing listens on (bound, read, released)."""
    return closed_port()
