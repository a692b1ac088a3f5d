"""Discord's rate limits in the trace: a bucket wait is a span, the bucket is on the POST."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot.client import ChatOpsBot
from bot.ratelimit_spans import WAIT_SPAN
from bot.sandbox import FakeDiscord
from telemetry import schema
from tests.helpers.sandbox_chat import settled_root, until

MESSAGES_ROUTE = r"/channels/\d+/messages"


def status_of(span: ReadableSpan) -> object:
    """The answer's status under either HTTP naming (stable, or the old one)."""
    attributes = span.attributes or {}
    return attributes.get("http.response.status_code", attributes.get("http.status_code"))


def children(spans: InMemorySpanExporter, parent: ReadableSpan) -> list[ReadableSpan]:
    return [
        s
        for s in spans.get_finished_spans()
        if s.parent is not None and s.parent.span_id == parent.context.span_id
    ]


def send_span(spans: InMemorySpanExporter, root: ReadableSpan) -> ReadableSpan:
    (send,) = [
        s
        for s in spans.get_finished_spans()
        if s.name == schema.SEND_SPAN and s.context.trace_id == root.context.trace_id
    ]
    return send


async def test_a_pre_emptive_bucket_wait_is_a_span_under_the_send(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    fake.exhaust_bucket("POST", MESSAGES_ROUTE, reset_after=0.4, limit=5, bucket="abc123")
    message: dict[str, Any] = fake.send_message("!about")
    root = await settled_root(spans, message)
    send = send_span(spans, root)
    # The send is its POST (the bucket's state on it); the wait after it is its one child,
    # and what made the send slow.
    (wait,) = children(spans, send)
    assert wait.name == WAIT_SPAN
    assert send.attributes[schema.RATELIMIT_REMAINING] == 0
    assert send.attributes[schema.RATELIMIT_LIMIT] == 5
    assert send.start_time <= wait.start_time and wait.end_time <= send.end_time
    # The request itself was quick: its own duration is on the send span.
    assert send.attributes[schema.HTTP_ATTEMPT_MS] < 300
    assert (wait.end_time - wait.start_time) / 1e9 >= 0.35
    assert wait.attributes[schema.RATELIMIT_RETRY_AFTER] == 0.4
    assert wait.attributes[schema.RATELIMIT_SCOPE] == "bucket"
    assert wait.attributes[schema.RATELIMIT_GLOBAL] is False
    assert "/channels/{channel_id}/messages" in str(wait.attributes[schema.RATELIMIT_BUCKET])
    assert (send.end_time - send.start_time) >= (wait.end_time - wait.start_time)


async def test_an_ordinary_send_has_no_wait_span(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    message = fake.send_message("!about")
    root = await settled_root(spans, message)
    send = send_span(spans, root)
    assert status_of(send) == 200
    assert children(spans, send) == []
    assert not [s for s in spans.get_finished_spans() if s.name == WAIT_SPAN]


async def test_a_429_post_carries_its_scope_and_bucket_state(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    fake.fail("POST", MESSAGES_ROUTE, status=429, retry_after=0.1, is_global=True)
    message = fake.send_message("!about")
    root = await settled_root(spans, message)
    (limited,) = [s for s in children(spans, send_span(spans, root)) if s.name == "POST"]
    assert status_of(limited) == 429
    assert limited.attributes[schema.RATELIMIT_SCOPE] == "global"
    assert limited.attributes[schema.RATELIMIT_GLOBAL] is True
    assert limited.attributes[schema.RATELIMIT_REMAINING] == 0


async def test_a_send_queued_behind_an_empty_bucket_shows_its_own_wait(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    fake.exhaust_bucket("POST", MESSAGES_ROUTE, reset_after=0.5)
    before = len(fake.bot_messages)
    fake.send_message("!about")
    await until(lambda: len(fake.bot_messages) > before)  # its POST emptied the bucket
    second = fake.send_message("!about")
    root = await settled_root(spans, second)
    waits = [s for s in children(spans, send_span(spans, root)) if s.name == WAIT_SPAN]
    assert len(waits) == 1
    assert waits[0].attributes[schema.RATELIMIT_SCOPE] == "bucket"
    assert 0 < waits[0].attributes[schema.RATELIMIT_RETRY_AFTER] <= 0.5


async def test_a_request_made_during_a_global_limit_shows_its_wait(
    spans: InMemorySpanExporter,
) -> None:
    """discord.py holds every request while a global limit lasts (``_global_over`` unset);
    the wrapper around ``HTTPClient.request`` records that wait, and otherwise hands back
    discord.py's own coroutine untouched."""
    from bot.ratelimit_spans import SCOPE_GLOBAL, _traced_request

    sent: list[object] = []

    async def original(self: object, route: object, **kwargs: object) -> str:
        sent.append(route)
        return "answer"

    request = _traced_request(original)
    client = SimpleNamespace(loop=asyncio.get_running_loop(), _global_over=asyncio.Event())
    route = SimpleNamespace(key="POST /channels/{channel_id}/messages")
    pending = asyncio.ensure_future(request(client, route))
    await asyncio.sleep(0)  # one turn of the loop: the request is now waiting
    assert sent == []
    client._global_over.set()
    assert await pending == "answer"
    (wait,) = [s for s in spans.get_finished_spans() if s.name == WAIT_SPAN]
    assert wait.attributes is not None
    assert wait.attributes[schema.RATELIMIT_SCOPE] == SCOPE_GLOBAL
    assert wait.attributes[schema.RATELIMIT_GLOBAL] is True
    assert wait.attributes[schema.RATELIMIT_BUCKET] == route.key

    assert await request(client, route) == "answer"  # no global limit: no span
    assert len([s for s in spans.get_finished_spans() if s.name == WAIT_SPAN]) == 1
