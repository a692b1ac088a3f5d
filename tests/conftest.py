"""Shared fixtures: a running FakeDiscord and a plain discord.py bot connected to it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import discord
import pytest
from discord.ext import commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot import endpoints
from bot.sandbox import FakeDiscord


def make_plain_bot() -> commands.Bot:
    """An unmodified ``commands.Bot`` with one ``!ping`` command."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True
    intents.message_content = True
    bot = commands.Bot(
        command_prefix="!",
        intents=intents,
        allowed_mentions=discord.AllowedMentions.none(),
        # on_ready waits this long after the last GUILD_CREATE (2 s by default).
        guild_ready_timeout=0.05,
    )

    @bot.command()
    async def ping(ctx: commands.Context[commands.Bot]) -> None:
        await ctx.reply("pong", mention_author=False)

    return bot


@pytest.fixture
async def point_at() -> AsyncIterator[Callable[[FakeDiscord], None]]:
    """Point discord.py at a fake, and back at Discord afterwards (class-level globals)."""
    base, gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY

    def point(fake: FakeDiscord) -> None:
        endpoints.use_api_base(fake.api_base)
        endpoints.use_gateway(fake.gateway_url)

    yield point
    Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = base, gateway


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


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    """A running one-guild FakeDiscord."""
    async with FakeDiscord(heartbeat_interval_ms=5_000) as running:
        yield running


@pytest.fixture
async def plain_bot(
    fake: FakeDiscord, point_at: Callable[[FakeDiscord], None]
) -> AsyncIterator[commands.Bot]:
    """A plain ``commands.Bot`` connected to ``fake`` and past READY."""
    point_at(fake)
    async with running_bot(fake) as bot:
        yield bot


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Poll ``predicate`` until true: discord.py's caches offer no event to wait on."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.005)
