"""discord.py's error chain runs for ``!boom`` and ``/boom`` alike, and the span still says error.

A cog written the usual discord.py way (a command's ``@error`` handler, the
cog's ``cog_command_error``, ``on_command`` and ``on_command_error`` listeners
added with ``@bot.listen``) sees each failure exactly once, whether the command
came as a message or as a slash command. The bot records the outcome on the
root span either way, and sends its own error reply only for a command whose
command and cog have no error handler.
"""

from __future__ import annotations

from typing import Any

import pytest
from discord.ext import commands
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from bot.client import ChatOpsBot
from bot.sandbox import FakeDiscord
from telemetry import schema
from tests.helpers.sandbox_chat import is_ephemeral, listeners_done, settled, settled_root, until
from tests.helpers.trace_finders import interaction_root, trace_id

CHANNEL_MESSAGE = 4  # an interaction callback that answers with a message

Seen = list[tuple[str, str]]  # (handler, command)


class Handled(commands.Cog):
    """A cog that handles its own errors, twice over, as discord.py allows."""

    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    @commands.hybrid_command(help="Fails, and says so itself.")
    async def boom(self, ctx: commands.Context[Any]) -> None:
        raise RuntimeError("boom internals")

    @boom.error
    async def boom_error(self, ctx: commands.Context[Any], error: commands.CommandError) -> None:
        self.seen.append(("@boom.error", ctx.command.name if ctx.command else "?"))
        await ctx.reply("The boom went off.", mention_author=False)

    async def cog_command_error(
        self, ctx: commands.Context[Any], error: commands.CommandError
    ) -> None:
        self.seen.append(("cog_command_error", ctx.command.name if ctx.command else "?"))


class Unhandled(commands.Cog):
    """A cog without error handlers: the bot answers for it."""

    @commands.hybrid_command(help="Fails; nobody handles it.")
    async def fizzle(self, ctx: commands.Context[Any]) -> None:
        raise RuntimeError("fizzle internals")


@pytest.fixture
async def seen(bot: ChatOpsBot) -> Seen:
    """Every handler call, in order; the two cogs added and two listeners registered."""
    calls: Seen = []

    @bot.listen()
    async def on_command(ctx: commands.Context[Any]) -> None:
        calls.append(("on_command", ctx.command.name if ctx.command else "?"))

    @bot.listen()
    async def on_command_error(ctx: commands.Context[Any], error: commands.CommandError) -> None:
        calls.append(("on_command_error", ctx.command.name if ctx.command else "?"))

    await bot.add_cog(Handled(calls))
    await bot.add_cog(Unhandled())
    return calls


async def answers_and_root(
    fake: FakeDiscord, spans: InMemorySpanExporter, line: str
) -> tuple[list[dict[str, Any]], ReadableSpan]:
    """Send ``line`` as a message (``!``) or a slash command (``/``); every answer, the root."""
    if line.startswith("!"):
        message = fake.send_message(line)
        root = await settled_root(spans, message)
        return await settled(fake, message), root
    interaction = fake.send_command(line)
    await until(lambda: interaction_root(spans, interaction.id) is not None)
    found = interaction_root(spans, interaction.id)
    assert found is not None
    await listeners_done()  # on_command_error listeners run in their own tasks
    messages = [c["data"] for c in interaction.callbacks if c.get("type") == CHANNEL_MESSAGE]
    return [*messages, *interaction.followups], found


def assert_error_span(root: ReadableSpan) -> None:
    assert root.attributes[schema.OUTCOME] == "error"
    assert root.attributes[schema.ERROR_TYPE] == "RuntimeError"
    assert root.status.status_code is StatusCode.ERROR


@pytest.mark.parametrize("prefix", ["!", "/"])
async def test_each_handler_runs_once_and_the_cog_answers_alone(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, seen: Seen, prefix: str
) -> None:
    answers, root = await answers_and_root(fake, spans, f"{prefix}boom")
    assert sorted(seen) == sorted(
        [
            ("on_command", "boom"),
            ("@boom.error", "boom"),
            ("cog_command_error", "boom"),
            ("on_command_error", "boom"),
        ]
    )
    # discord.py's order: the command's handler, then the cog's.
    assert seen.index(("@boom.error", "boom")) < seen.index(("cog_command_error", "boom"))
    assert_error_span(root)
    # Only the cog's own answer: the bot sends no second reply.
    assert [answer["content"] for answer in answers] == ["The boom went off."], answers


@pytest.mark.parametrize("prefix", ["!", "/"])
async def test_a_command_without_handlers_gets_the_bots_one_reply(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, seen: Seen, prefix: str
) -> None:
    answers, root = await answers_and_root(fake, spans, f"{prefix}fizzle")
    assert sorted(seen) == [("on_command", "fizzle"), ("on_command_error", "fizzle")]
    assert_error_span(root)
    (answer,) = answers
    assert trace_id(root) in answer["content"]
    assert is_ephemeral(answer) or prefix == "!"  # privately, where Discord allows it
    assert "fizzle internals" not in answer["content"]
