"""HTTP spans: name and attributes as the stable HTTP client conventions define them, and
the attempts of a ``discord.send``."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes.http_attributes import HTTP_METHOD, HTTP_URL
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_REQUEST_METHOD_ORIGINAL,
    HTTP_RESPONSE_STATUS_CODE,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_FULL
from opentelemetry.trace import SpanKind, StatusCode
from yarl import URL

from telemetry import schema
from telemetry.http_spans import _request_attributes
from telemetry.spans import send_span
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


class Unanswered(AbstractResolver):
    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[Any]:
        await asyncio.sleep(30)
        return []

    async def close(self) -> None:
        return None


def _timing_out_session() -> aiohttp.ClientSession:
    """A session whose requests never connect and time out after 0.2 s (the test process
    installed tracing: every session has the span middleware)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=Unanswered()),
        timeout=aiohttp.ClientTimeout(total=0.2),
    )


async def test_a_request_that_outlives_the_sessions_timeout_is_recorded_as_a_timeout(
    spans: InMemorySpanExporter,
) -> None:
    """aiohttp cancels a request whose total timeout runs out and hands its caller a
    ``TimeoutError``; the span must say the same, not ``CancelledError``."""
    async with _timing_out_session() as session:
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


class Flaky:
    """A local HTTP server: the first ``drops`` connections are closed unanswered, then
    every request gets ``statuses`` in turn (the last one repeats)."""

    def __init__(self, drops: int = 0, statuses: tuple[int, ...] = (200,)) -> None:
        self.drops = drops
        self.statuses = list(statuses)
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:  # the client closed the connection
                return
            if self.drops:
                self.drops -= 1
                writer.close()
                return
            status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()

    async def __aenter__(self) -> Flaky:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = (
            f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/channels/1/messages"
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()


def _send_children(spans: InMemorySpanExporter, send: ReadableSpan) -> list[ReadableSpan]:
    found = [
        s
        for s in spans.get_finished_spans()
        if s.parent is not None and s.parent.span_id == send.context.span_id
    ]
    return sorted(found, key=lambda s: s.start_time or 0)


def _only_send(spans: InMemorySpanExporter) -> ReadableSpan:
    (send,) = [s for s in spans.get_finished_spans() if s.name == schema.SEND_SPAN]
    return send


async def test_a_send_is_its_one_request(spans: InMemorySpanExporter) -> None:
    """One span for a reply and its POST: kind CLIENT, the HTTP attributes, no child."""
    async with Flaky() as server, aiohttp.ClientSession() as session:
        with send_span() as span:
            span.set_attribute(schema.RESPONSE, "hi")
            async with session.post(server.url) as response:
                assert response.status == 200
    send = _only_send(spans)
    assert send.kind is SpanKind.CLIENT
    assert send.attributes[HTTP_REQUEST_METHOD] == "POST"
    assert send.attributes[URL_FULL] == server.url
    assert send.attributes[HTTP_RESPONSE_STATUS_CODE] == 200
    assert send.attributes[schema.RESPONSE] == "hi"
    assert send.status.status_code is StatusCode.UNSET
    assert 0 < send.attributes[schema.HTTP_ATTEMPT_MS] <= (send.end_time - send.start_time) / 1e6
    assert _send_children(spans, send) == []


async def test_a_retried_request_leaves_each_earlier_attempt_as_it_was(
    spans: InMemorySpanExporter,
) -> None:
    """A dropped connection, then a 503, then a 200, each retried by the caller (as discord.py
    retries a connection reset, a 429 or a 500): the send span is
    the attempt that got through; the two before it are CLIENT children with their
    errors, times inside the send's, and the send carries none of their failure."""
    async with Flaky(drops=1, statuses=(503, 200)) as server, aiohttp.ClientSession() as session:
        with send_span():
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await session.post(server.url)
            for expected in (503, 200):
                async with session.post(server.url) as response:
                    assert response.status == expected
    send = _only_send(spans)
    dropped, unavailable = _send_children(spans, send)
    assert [dropped.name, unavailable.name] == ["POST", "POST"]
    assert dropped.kind is unavailable.kind is SpanKind.CLIENT
    assert dropped.attributes[ERROR_TYPE] == "aiohttp.client_exceptions.ServerDisconnectedError"
    assert HTTP_RESPONSE_STATUS_CODE not in dropped.attributes
    assert [e.name for e in dropped.events] == ["exception"]
    assert dropped.status.status_code is StatusCode.ERROR
    assert unavailable.attributes[HTTP_RESPONSE_STATUS_CODE] == 503
    assert unavailable.attributes[ERROR_TYPE] == "503"
    assert not unavailable.events
    for attempt in (dropped, unavailable):
        assert attempt.attributes[URL_FULL] == server.url
        assert schema.HTTP_ATTEMPT_MS not in attempt.attributes  # its own times say it
        assert send.start_time <= attempt.start_time <= attempt.end_time <= send.end_time
    assert dropped.end_time <= unavailable.start_time
    assert send.attributes[HTTP_RESPONSE_STATUS_CODE] == 200
    assert ERROR_TYPE not in send.attributes
    assert not send.events
    assert send.status.status_code is StatusCode.UNSET


async def test_another_request_in_a_send_is_a_child_of_it(spans: InMemorySpanExporter) -> None:
    """Only the first request (and its retries) is the send span; any other is a child."""
    async with Flaky() as server, aiohttp.ClientSession() as session:
        with send_span():
            async with session.post(server.url):
                pass
            async with session.get(server.url + "/1"):
                pass
    send = _only_send(spans)
    (other,) = _send_children(spans, send)
    assert send.attributes[HTTP_REQUEST_METHOD] == "POST"
    assert (other.name, other.attributes[URL_FULL]) == ("GET", server.url + "/1")


async def test_the_same_request_again_after_a_success_is_no_retry(
    spans: InMemorySpanExporter,
) -> None:
    """Only a failed attempt is retried: a second identical request after a 200 (or one
    still under way) is a child of its own, and the send keeps its 200."""
    async with Flaky(statuses=(200, 404)) as server, aiohttp.ClientSession() as session:
        with send_span():
            for expected in (200, 404):
                async with session.post(server.url) as response:
                    assert response.status == expected
    send = _only_send(spans)
    (again,) = _send_children(spans, send)
    assert send.attributes[HTTP_RESPONSE_STATUS_CODE] == 200
    assert send.status.status_code is StatusCode.UNSET
    assert again.attributes[HTTP_RESPONSE_STATUS_CODE] == 404


async def test_a_request_made_after_the_send_ended_is_a_span_of_its_own(
    spans: InMemorySpanExporter,
) -> None:
    """A task started inside a send still sees it current once it has ended (tasks copy
    the context); what it asks for then is recorded on a span of its own."""
    async with Flaky() as server, aiohttp.ClientSession() as session:
        go = asyncio.Event()

        async def later() -> int:
            await go.wait()
            async with session.get(server.url) as response:
                return response.status

        with send_span():
            task = asyncio.create_task(later())
        go.set()
        assert await task == 200
    send = _only_send(spans)
    assert send.kind is SpanKind.INTERNAL
    assert HTTP_REQUEST_METHOD not in send.attributes
    (late,) = _send_children(spans, send)
    assert late.name == "GET" and late.attributes[HTTP_RESPONSE_STATUS_CODE] == 200


async def test_a_send_that_times_out_records_the_timeout_once(
    spans: InMemorySpanExporter,
) -> None:
    """aiohttp raises its ``TimeoutError`` from the cancellation the attempt saw: the send
    span records the timeout once, not the attempt's and the escaping one."""
    async with _timing_out_session() as session:
        with pytest.raises(TimeoutError), send_span():
            await session.post("http://never.test/x")
    send = _only_send(spans)
    assert send.attributes[ERROR_TYPE] == "TimeoutError"
    assert [e.attributes["exception.type"] for e in send.events if e.attributes] == ["TimeoutError"]
    assert send.status.status_code is StatusCode.ERROR


async def test_a_failure_escaping_the_send_is_recorded_on_it_once(
    spans: InMemorySpanExporter,
) -> None:
    async with Flaky(drops=1) as server, aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ServerDisconnectedError), send_span():
            await session.post(server.url)
    send = _only_send(spans)
    assert [e.attributes["exception.type"] for e in send.events if e.attributes] == [
        "aiohttp.client_exceptions.ServerDisconnectedError"
    ]
    assert send.status.status_code is StatusCode.ERROR
    assert _send_children(spans, send) == []
