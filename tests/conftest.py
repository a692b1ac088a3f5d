"""Shared fixtures: an in-memory span exporter, the fake Discord, the real bot and a plain one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import discord
import pytest
from discord.ext import commands
from discord.gateway import DiscordWebSocket
from discord.http import Route
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot import endpoints
from bot.client import ChatOpsBot, bot_intents
from bot.config import Settings, load_settings
from bot.harness import connected_bot
from bot.sandbox import FakeDiscord
from telemetry.setup import TelemetryConfig, build_provider, install
from tests.fakes.catfact import FakeCatFacts
from tests.fakes.function import FakeFunction
from tests.fakes.scryfall import FakeScryfall

_exporter = InMemorySpanExporter()
install(
    build_provider(
        TelemetryConfig(span_store=None), exporters=[], processors=[SimpleSpanProcessor(_exporter)]
    )
)


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    """The process-wide in-memory exporter (not cleared between tests)."""
    return _exporter


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The spans finished during one test."""
    _exporter.clear()
    yield _exporter
    _exporter.clear()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings isolated from the developer's environment files."""
    return load_settings(
        _env_file=None,
        span_store="off",
        health_port=0,
        flags_file=tmp_path / "flags.json",
        commands_file=tmp_path / "commands.toml",
        otel_exporter_otlp_endpoint=None,
        honeycomb_api_key=None,
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    """A protocol-level Discord on a free local port."""
    async with FakeDiscord(heartbeat_interval_ms=5_000) as server:
        yield server


@pytest.fixture
async def bot(
    settings: Settings, fake: FakeDiscord, spans: InMemorySpanExporter
) -> AsyncIterator[ChatOpsBot]:
    """The real bot connected to ``fake`` over sockets."""
    async with connected_bot(settings, fake, guild_ready_timeout=0.05) as running:
        yield running


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


# -- fake external APIs (issue 3) -----------------------------------------


@pytest.fixture
async def catfact_api() -> AsyncIterator[FakeCatFacts]:
    """The public cat-fact API, faked on a free local port."""
    async with FakeCatFacts() as server:
        yield server


@pytest.fixture
async def scryfall_api() -> AsyncIterator[FakeScryfall]:
    """Scryfall's card API, faked on a free local port."""
    async with FakeScryfall() as server:
        yield server


@pytest.fixture
async def function_api() -> AsyncIterator[FakeFunction]:
    """An operator's own endpoint (an Azure Function), faked on a free local port."""
    async with FakeFunction() as server:
        yield server


@pytest.fixture
def unused_port() -> int:
    """A local port nothing listens on (bound, read, released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
