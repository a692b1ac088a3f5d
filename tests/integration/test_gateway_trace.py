"""The connection in the trace: one ``startup`` trace, gateway health spans over time."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest
from discord.gateway import ReconnectWebSocket
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot import gateway_health
from bot.client import ChatOpsBot
from bot.config import Settings
from bot.gateway_health import HEALTH_SPAN, STARTUP_SPAN, GatewayHealth
from bot.harness import connected_bot
from bot.sandbox import FakeDiscord
from telemetry import schema
from tests.helpers.sandbox_chat import until


def named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == name]


async def test_start_up_rest_calls_are_one_startup_trace(
    bot: ChatOpsBot, spans: InMemorySpanExporter
) -> None:
    (startup,) = named(spans, STARTUP_SPAN)
    assert startup.parent is None
    assert startup.attributes[schema.API_HOST] == "127.0.0.1"
    under = [
        # url.full (stable HTTP names) or http.url (the old ones)
        str(s.attributes.get("url.full", s.attributes.get("http.url", "")))
        for s in spans.get_finished_spans()
        if s.parent is not None and s.parent.span_id == startup.context.span_id
    ]
    assert any(url.endswith("/users/@me") for url in under)
    assert any(url.endswith("/oauth2/applications/@me") for url in under)
    assert any("/gateway" in url for url in under)
    # No REST span of start-up is left without a parent.
    orphans = [
        s for s in spans.get_finished_spans() if s.parent is None and s.name in ("GET", "POST")
    ]
    assert orphans == []


@pytest.fixture
async def watched_bot(
    settings: Settings, fake: FakeDiscord, spans: InMemorySpanExporter
) -> AsyncIterator[ChatOpsBot]:
    quick = settings.model_copy(update={"gateway_health_interval_s": 0.1})
    async with connected_bot(quick, fake, guild_ready_timeout=0.05) as running:
        yield running


def health_total(spans: InMemorySpanExporter, key: str) -> int:
    return sum(int(s.attributes.get(key, 0)) for s in named(spans, HEALTH_SPAN))  # type: ignore[arg-type]


async def test_a_resume_shows_in_the_gateway_health_spans(
    watched_bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    await until(lambda: health_total(spans, schema.GATEWAY_SESSIONS) == 1)
    await fake.send_reconnect()
    await fake.wait_resumed()
    await until(lambda: health_total(spans, schema.GATEWAY_RESUMES) == 1)
    assert health_total(spans, schema.GATEWAY_DISCONNECTS) >= 1
    assert health_total(spans, schema.GATEWAY_INVALID_SESSIONS) == 0
    (resumed,) = [s for s in named(spans, HEALTH_SPAN) if s.attributes[schema.GATEWAY_RESUMES]]
    assert [e.name for e in resumed.events][-1] == "resumed"
    assert resumed.parent is None
    # Consecutive intervals: each span starts where the previous one ended.
    ordered = sorted(named(spans, HEALTH_SPAN), key=lambda s: s.start_time or 0)
    assert all(a.end_time == b.start_time for a, b in itertools.pairwise(ordered))


async def test_latency_and_invalid_sessions_are_recorded_per_interval(
    spans: InMemorySpanExporter,
) -> None:
    gateway_health.install()
    health = GatewayHealth(lambda: 0.0425, interval_s=3600)
    health.start()
    try:
        ReconnectWebSocket(0, resume=False)  # what discord.py raises on op 9, d: false
        ReconnectWebSocket(0)  # op 7 RECONNECT: not an invalid session
    finally:
        await health.stop()
    (span,) = named(spans, HEALTH_SPAN)
    assert span.attributes[schema.GATEWAY_LATENCY_MS] == 42.5
    assert span.attributes[schema.GATEWAY_INVALID_SESSIONS] == 1
    assert [e.name for e in span.events] == ["invalid_session"]


async def test_latency_is_left_out_before_the_first_heartbeat(
    spans: InMemorySpanExporter,
) -> None:
    health = GatewayHealth(lambda: float("nan"), interval_s=3600)
    health.flush()
    (span,) = named(spans, HEALTH_SPAN)
    assert schema.GATEWAY_LATENCY_MS not in (span.attributes or {})
