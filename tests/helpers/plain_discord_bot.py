"""An unmodified ``commands.Bot`` against the fake: what the fake must serve, bot aside."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import discord
from discord.ext import commands

from bot.client import bot_intents
from bot.sandbox import FakeDiscord


def make_plain_bot() -> commands.Bot:
    """An unmodified ``commands.Bot`` with one ``!ping`` command."""
    bot = commands.Bot(
        command_prefix="!",
        intents=bot_intents(),  # the same intents as ChatOpsBot
        allowed_mentions=discord.AllowedMentions.none(),
        # on_ready waits this long after the last GUILD_CREATE (2 s by default).
        guild_ready_timeout=0.05,
    )

    @bot.command()
    async def ping(ctx: commands.Context[commands.Bot]) -> None:
        await ctx.reply("pong", mention_author=False)

    return bot


@contextlib.asynccontextmanager
async def running_bot(fake: FakeDiscord, token: str = "test-token") -> AsyncIterator[commands.Bot]:
    """Start a plain bot against ``fake`` and wait for READY; always close it."""
    bot = make_plain_bot()
    task = asyncio.create_task(bot.start(token))
    try:
        await fake.wait_ready()
        yield bot
    finally:
        await bot.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
