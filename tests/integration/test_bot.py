"""The real bot against the protocol-level fake: replies and the traces they leave."""

from __future__ import annotations

from typing import Any

from discord.ext import commands
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
)
from opentelemetry.trace import SpanKind, StatusCode

from bot.client import ChatOpsBot
from bot.sandbox import FakeDiscord
from commands.toolkit.replies import reply
from telemetry import schema
from tests.helpers.sandbox_chat import ask, settled
from tests.helpers.trace_finders import attempts, children, root_of

MESSAGES_ROUTE = r"/channels/\d+/messages"


async def test_ping_answers_and_leaves_one_trace_with_the_schema(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    message, answer = await ask(fake, "!ping")
    assert answer["content"].startswith("Pong! gateway")

    root = root_of(spans, message)
    assert root.name == "command ping"
    attrs = root.attributes
    assert attrs[schema.COMMAND] == "ping"
    assert attrs[schema.OUTCOME] == "ok"
    assert attrs[schema.GUILD_ID] == str(fake.guild.id)
    assert attrs[schema.GUILD_NAME] == fake.guild.name
    assert attrs[schema.AUTHOR_ID] == str(fake.user["id"])
    assert attrs[schema.AUTHOR_NAME] == fake.user["username"]
    assert attrs[schema.CHANNEL_ID] == str(fake.channel_id)
    assert attrs[schema.SHARD_ID] == 0
    assert attrs[schema.RESPONSE] == answer["content"]
    assert root.status.status_code is StatusCode.UNSET

    (send,) = [s for s in children(spans, root) if s.name == schema.SEND_SPAN]
    assert send.attributes[schema.RESPONSE] == answer["content"]
    # The send span is also its POST: one CLIENT span, no child for the one attempt.
    assert send.kind is SpanKind.CLIENT
    assert send.attributes[HTTP_REQUEST_METHOD] == "POST"
    assert send.attributes[HTTP_RESPONSE_STATUS_CODE] == 200
    assert children(spans, send) == []
    # Trace fields reach every descendant through the processor (the typing POST too).
    (typing_post,) = [
        s for s in children(spans, root) if s.kind is SpanKind.CLIENT and s is not send
    ]
    assert typing_post.attributes[HTTP_REQUEST_METHOD] == "POST"
    for span in (send, typing_post):
        assert span.attributes[schema.COMMAND] == "ping"
        assert span.attributes[schema.AUTHOR_ID] == str(fake.user["id"])


async def test_help_lists_the_commands(bot: ChatOpsBot, fake: FakeDiscord) -> None:
    _, answer = await ask(fake, "!help")
    for name in ("ping", "about", "roll", "help"):
        assert name in answer["content"]


async def test_about_names_version_and_runtime(bot: ChatOpsBot, fake: FakeDiscord) -> None:
    _, answer = await ask(fake, "!about")
    assert answer["content"].startswith("chatops-bot ")
    assert "discord.py 2." in answer["content"]


async def test_unknown_command_is_recorded_without_error_status(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    message, answer = await ask(fake, "!frobnicate now")
    assert "`!frobnicate`" in answer["content"] and "`!help`" in answer["content"]
    root = root_of(spans, message)
    assert root.name == "message"
    assert root.attributes[schema.OUTCOME] == "unknown_command"
    assert root.status.status_code is StatusCode.UNSET


async def test_bad_argument_replies_with_usage_and_is_bad_input(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    message, answer = await ask(fake, "!roll lots")
    assert "Usage: `!roll <dice>`" in answer["content"]
    root = root_of(spans, message)
    assert root.name == "command roll"
    assert root.attributes[schema.OUTCOME] == "bad_input"
    assert root.attributes[schema.COMMAND_ARGS] == "lots"
    assert root.attributes[schema.ERROR_TYPE] == "BadArgument"
    assert root.status.status_code is StatusCode.UNSET


async def test_missing_argument_replies_with_usage(bot: ChatOpsBot, fake: FakeDiscord) -> None:
    _, answer = await ask(fake, "!roll")
    assert answer["content"].startswith("dice is a required argument")
    assert "Usage: `!roll <dice>`" in answer["content"]


class Broken(commands.Cog):
    @commands.command()
    async def explode(self, ctx: commands.Context[Any]) -> None:
        raise RuntimeError("secret internals")


async def test_unexpected_error_names_the_trace_and_is_recorded_on_the_root(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    await bot.add_cog(Broken())
    message, answer = await ask(fake, "!explode")
    root = root_of(spans, message)
    trace_id = f"{root.context.trace_id:032x}"
    assert trace_id in answer["content"]
    assert "secret internals" not in answer["content"]
    assert root.attributes[schema.OUTCOME] == "error"
    assert root.attributes[schema.ERROR_TYPE] == "RuntimeError"
    assert root.attributes["error.type"] == "RuntimeError"  # the stable semantic convention
    assert root.status.status_code is StatusCode.ERROR
    assert [e.name for e in root.events] == ["exception"]


async def test_ordinary_chat_is_ignored_and_its_content_never_recorded(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    message = fake.send_message("my password is swordfish")
    assert await settled(fake, message) == []
    root = root_of(spans, message)
    assert root.attributes[schema.OUTCOME] == "ignored"
    for span in spans.get_finished_spans():
        assert "swordfish" not in str(dict(span.attributes or {}))


async def test_messages_from_bots_are_ignored(bot: ChatOpsBot, fake: FakeDiscord) -> None:
    other = fake.add_user("otherbot", bot=True)
    message = fake.send_message("!ping", author=other)
    # Its on_message task started first and is awaited with the next message's listeners.
    await ask(fake, "!about")
    assert fake.replies_so_far(int(message["id"])) == []


async def test_each_message_is_its_own_trace(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    first, _ = await ask(fake, "!about")
    second, _ = await ask(fake, "!about")
    assert root_of(spans, first).context.trace_id != root_of(spans, second).context.trace_id


async def test_no_tracing_headers_are_sent_to_discord(bot: ChatOpsBot, fake: FakeDiscord) -> None:
    await ask(fake, "!ping")
    for request in fake.requests:
        names = {name.lower() for name in request.headers}
        assert "traceparent" not in names and "baggage" not in names


async def test_replies_never_ping_anyone(bot: ChatOpsBot, fake: FakeDiscord) -> None:
    await ask(fake, "!@everyone")
    await ask(fake, f"!roll <@&{fake.guild.roles[0]['id']}>")
    assert fake.bot_messages
    assert not any(fake.would_ping(message) for message in fake.bot_messages)


async def test_direct_messages_have_no_guild(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    message, answer = await ask(fake, "!about", channel_id=fake.dm_channel_id(fake.user))
    root = root_of(spans, message)
    assert schema.GUILD_ID not in root.attributes
    assert answer["content"].startswith("chatops-bot")


async def test_rate_limited_reply_still_arrives_and_the_retry_shows_in_the_trace(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    fake.fail("POST", MESSAGES_ROUTE, status=429, retry_after=0.2)
    message, answer = await ask(fake, "!about")
    assert answer["content"].startswith("chatops-bot")
    root = root_of(spans, message)
    (send,) = [s for s in children(spans, root) if s.name == schema.SEND_SPAN]
    tried = attempts(spans, send)
    assert [s.attributes[HTTP_RESPONSE_STATUS_CODE] for s in tried] == [429, 200]
    # The 429 is a span of its own, an error; the send (the attempt that got through) is not.
    first = tried[0]
    assert first.name == "POST" and first.kind is SpanKind.CLIENT
    assert first.status.status_code is StatusCode.ERROR
    assert first.attributes[ERROR_TYPE] == "429"
    assert first.attributes[schema.COMMAND] == "about"
    assert first.start_time >= send.start_time and first.end_time <= send.end_time
    assert send.status.status_code is StatusCode.UNSET
    assert ERROR_TYPE not in send.attributes


async def test_dropped_gateway_resumes_and_the_bot_still_answers(
    bot: ChatOpsBot, fake: FakeDiscord
) -> None:
    await fake.drop_connection()
    _, answer = await ask(fake, "!about")
    assert answer["content"].startswith("chatops-bot")
    assert fake.resume_count == 1
    assert fake.identify_count == 1


class Verbose(commands.Cog):
    @commands.command()
    async def verbose(self, ctx: commands.Context[Any], *, text: str) -> None:
        if text.startswith("fail"):
            raise RuntimeError("e" * 3000)
        await reply(ctx, "r" * 1900)


def _cut(text: str, limit: int) -> str:
    return text[: limit - 1] + "\u2026"


async def test_long_arguments_answers_and_error_messages_are_cut_on_the_spans(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    """The user still gets the whole answer; the spans carry at most the schema's limits."""
    await bot.add_cog(Verbose())
    text = "a" * 900
    message, answer = await ask(fake, f"!verbose {text}")
    assert answer["content"] == "r" * 1900
    root = root_of(spans, message)
    assert root.attributes[schema.COMMAND_ARGS] == _cut(text, schema.ARGS_MAX_CHARS)
    assert root.attributes[schema.RESPONSE] == _cut("r" * 1900, schema.RESPONSE_MAX_CHARS)
    (send,) = children(spans, root, schema.SEND_SPAN)
    assert send.attributes[schema.RESPONSE] == root.attributes[schema.RESPONSE]

    failed, _ = await ask(fake, "!verbose fail")
    error_message = str(root_of(spans, failed).attributes[schema.ERROR_MESSAGE])
    assert len(error_message) == schema.RESPONSE_MAX_CHARS
    assert error_message.endswith("e\u2026")
