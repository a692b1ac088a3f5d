"""The HTTP span's name and start attributes, as the stable HTTP client conventions define them."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes.http_attributes import HTTP_METHOD, HTTP_URL
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_REQUEST_METHOD_ORIGINAL,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_FULL
from yarl import URL

from telemetry.http_spans import _request_attributes
from telemetry.tracer import LeanTracerProvider

TOKEN = "aW50ZXJhY3Rpb246MTIzOnNlY3JldA"


def test_a_request_is_named_after_its_method_with_server_address_and_default_port() -> None:
    url = URL(f"https://discord.com/api/v10/interactions/123/{TOKEN}/callback")
    name, attributes = _request_attributes("POST", url, "stable")
    assert name == "POST"
    assert attributes == {
        HTTP_REQUEST_METHOD: "POST",
        URL_FULL: "https://discord.com/api/v10/interactions/123/{token}/callback",
        SERVER_ADDRESS: "discord.com",
        SERVER_PORT: 443,
    }


def test_a_method_outside_the_standard_ones_is_other_and_the_span_is_named_http() -> None:
    name, attributes = _request_attributes("PURGE", URL("http://cache.test:8080/x"), "stable")
    assert name == "HTTP"
    assert attributes[HTTP_REQUEST_METHOD] == "_OTHER"
    assert attributes[HTTP_REQUEST_METHOD_ORIGINAL] == "PURGE"
    assert attributes[SERVER_PORT] == 8080


def test_dup_adds_the_old_names_with_the_same_redacted_url() -> None:
    url = URL(f"https://discord.com/api/v10/webhooks/1/{TOKEN}/messages/@original")
    _, attributes = _request_attributes("PATCH", url, "dup")
    assert attributes[HTTP_METHOD] == "PATCH"
    assert attributes[HTTP_URL] == attributes[URL_FULL]
    assert TOKEN not in repr(attributes)


async def test_a_request_that_outlives_the_sessions_timeout_is_recorded_as_a_timeout(
    spans: InMemorySpanExporter,
) -> None:
    """aiohttp cancels a request whose total timeout runs out and hands its caller a
    ``TimeoutError``; the span must say the same, not ``CancelledError``."""

    class Unanswered(AbstractResolver):
        async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[Any]:
            await asyncio.sleep(30)
            return []

        async def close(self) -> None:
            return None

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=Unanswered()),
        timeout=aiohttp.ClientTimeout(total=0.2),
    )  # the test process installed tracing: every session has the span middleware
    async with session:
        with pytest.raises(TimeoutError):
            await session.get("http://never.test/x")
    (span,) = [s for s in spans.get_finished_spans() if s.name == "GET"]
    assert span.attributes is not None
    assert span.attributes[ERROR_TYPE] == "TimeoutError"
    assert [e.attributes["exception.type"] for e in span.events if e.attributes] == ["TimeoutError"]


def test_leaving_a_span_twice_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    """As the OpenTelemetry API does: a context token used twice is logged, and the
    span still ends."""
    tracer = LeanTracerProvider(Resource({})).get_tracer("t")
    current = tracer.start_as_current_span("twice")

    def twice() -> None:
        with current, current:
            pass

    # In a context of its own: the first token is never reset, so "twice" stays
    # current there (as with the API), and must not leak into later tests.
    contextvars.copy_context().run(twice)
    assert "Failed to detach context" in caplog.text
