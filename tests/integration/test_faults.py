"""Discord misbehaving: each command still gets exactly one reply, and the trace says why."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE
from opentelemetry.trace import StatusCode

from bot.client import ChatOpsBot
from bot.sandbox import FakeDiscord
from telemetry import schema
from tests.helpers.sandbox_chat import ask, handled, settled_root
from tests.helpers.trace_finders import attempts, root_of

MESSAGES_ROUTE = r"/channels/\d+/messages"


def send_of(spans: InMemorySpanExporter, message: dict[str, Any]) -> ReadableSpan:
    """The (first) ``discord.send`` span of ``message``'s trace."""
    root = root_of(spans, message)
    return next(
        s
        for s in spans.get_finished_spans()
        if s.name == schema.SEND_SPAN and s.context.trace_id == root.context.trace_id
    )


def send_posts(spans: InMemorySpanExporter, message: dict[str, Any]) -> list[ReadableSpan]:
    """The HTTP attempts of the send span of ``message``'s trace, the send span last."""
    return attempts(spans, send_of(spans, message))


@pytest.mark.parametrize("is_global", [False, True])
async def test_429_on_messages_route_is_retried_and_answered_once(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, is_global: bool
) -> None:
    fake.fail("POST", MESSAGES_ROUTE, status=429, retry_after=0.2, is_global=is_global)
    message, _ = await ask(fake, "!about")
    statuses = [s.attributes[HTTP_RESPONSE_STATUS_CODE] for s in send_posts(spans, message)]
    assert statuses == [429, 200]


@pytest.mark.parametrize("status", [500, 502])
async def test_server_errors_are_retried_and_answered_once(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, status: int
) -> None:
    fake.fail("POST", MESSAGES_ROUTE, status=status)
    # discord.py waits 1 s before retrying a 5xx.
    message, _ = await ask(fake, "!about")
    statuses = [s.attributes[HTTP_RESPONSE_STATUS_CODE] for s in send_posts(spans, message)]
    assert statuses == [status, 200]


async def test_an_outage_fails_that_reply_without_crashing_the_bot(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    # discord.py does not retry a 503: the reply and the error reply both fail.
    fake.fail("POST", MESSAGES_ROUTE, status=503, times=2)
    message = fake.send_message("!about")
    # The root ends after the error reply was tried (and failed): wait on that, not a clock.
    root = await settled_root(spans, message)
    assert [m for m in fake.bot_messages if m.get("message_reference")] == []
    assert root.attributes[schema.OUTCOME] == "error"
    assert root.attributes[schema.ERROR_TYPE] == "DiscordServerError"
    # The failed send is its POST: the 503, and discord.py's exception, recorded once.
    send = send_of(spans, message)
    assert send.attributes[HTTP_RESPONSE_STATUS_CODE] == 503
    assert send.status.status_code is StatusCode.ERROR
    assert [e.attributes["exception.type"] for e in send.events] == [
        "discord.errors.DiscordServerError"
    ]
    # The outage is over: the bot is still there and answers.
    assert await fake.say("!about", timeout=5) is not None


async def test_a_slow_rest_answer_delays_but_does_not_lose_the_reply(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    fake.fail("POST", MESSAGES_ROUTE, status=200, delay=0.5)
    message, _ = await ask(fake, "!about")
    (post,) = send_posts(spans, message)
    duration_ms = (post.end_time - post.start_time) / 1e6
    assert duration_ms >= 450


async def test_reconnect_resumes_and_the_bot_still_answers(
    bot: ChatOpsBot, fake: FakeDiscord
) -> None:
    await fake.send_reconnect()
    await fake.wait_resumed()
    await ask(fake, "!about")
    assert fake.identify_count == 1


async def test_invalid_session_re_identifies_and_the_bot_still_answers(
    bot: ChatOpsBot, fake: FakeDiscord
) -> None:
    await fake.send_invalid_session(resumable=False)
    # discord.py waits 5 s before a second IDENTIFY, as Discord asks.
    answer = await fake.say("!about", timeout=12)
    assert answer is not None
    assert fake.identify_count == 2


async def test_messages_sent_while_disconnected_are_answered_after_resume(
    bot: ChatOpsBot, fake: FakeDiscord
) -> None:
    await fake.drop_connection()
    message = fake.send_message("!about")
    await fake.wait_resumed()
    replies = await handled(fake, message)
    assert len(replies) == 1
