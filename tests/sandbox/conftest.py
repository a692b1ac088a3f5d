"""Fixtures for the fake Discord's own tests: an unmodified discord.py bot pointed at the fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from discord.ext import commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot import endpoints
from bot.sandbox import FakeDiscord
from tests.helpers.plain_discord_bot import running_bot


@pytest.fixture
async def point_at() -> AsyncIterator[Callable[[FakeDiscord], None]]:
    """Point discord.py at a fake, and back at Discord afterwards (class-level globals)."""
    base, gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY

    def point(fake: FakeDiscord) -> None:
        endpoints.use_api_base(fake.api_base)
        endpoints.use_gateway(fake.gateway_url)

    yield point
    Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = base, gateway


@pytest.fixture
async def plain_bot(
    fake: FakeDiscord, point_at: Callable[[FakeDiscord], None]
) -> AsyncIterator[commands.Bot]:
    """A plain ``commands.Bot`` connected to ``fake`` and past READY."""
    point_at(fake)
    async with running_bot(fake) as bot:
        yield bot
