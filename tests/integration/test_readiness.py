"""``/readyz`` turns 200 as soon as the bot answers messages, not ``guild_ready_timeout`` later."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot.client import ChatOpsBot, ShardedChatOpsBot, create_bot
from bot.config import Settings
from bot.health import health_app, start_health_server
from bot.sandbox import FakeDiscord
from tests.helpers.raw_http import status_of, until_status

# Far longer than the test: on_ready never fires while it runs.
SLOW_GUILD_READY_S = 60.0


async def _no_identify_wait(self: object, shard_id: int | None, *, initial: bool = False) -> None:
    """discord.py waits 5 s between shard IDENTIFYs for Discord's sake; the fake needs none."""


async def _ready_before_on_ready(bot: ChatOpsBot, fake: FakeDiscord) -> None:
    runner = await start_health_server(health_app(lambda: bot.gateway_up), 0)
    port = runner.addresses[0][1]
    task = asyncio.create_task(bot.start("sandbox-token"))
    try:
        assert await status_of(port, "/readyz") == 503
        await until_status(port, "/readyz", 200, within=10)
        answer = await fake.say("!ping", timeout=5)
        assert answer is not None and answer["content"].startswith("Pong")
        assert not bot.is_ready()  # discord.py's on_ready is still SLOW_GUILD_READY_S away
    finally:
        await bot.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await runner.cleanup()
    assert not bot.gateway_up


async def test_readyz_is_200_once_the_bot_answers_before_on_ready(
    settings: Settings, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    config = settings.model_copy(update={"discord_api_base": fake.api_base})
    bot = create_bot(config, guild_ready_timeout=SLOW_GUILD_READY_S)
    await _ready_before_on_ready(bot, fake)


async def test_sharded_readyz_waits_for_every_shard_of_the_process(
    settings: Settings, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ShardedChatOpsBot, "before_identify_hook", _no_identify_wait)
    async with FakeDiscord(guild_count=2, shard_count=2) as fake:
        config = settings.model_copy(
            update={"discord_api_base": fake.api_base, "shard_count": 2, "shard_ids": [0, 1]}
        )
        bot = create_bot(config, guild_ready_timeout=SLOW_GUILD_READY_S)
        assert isinstance(bot, ShardedChatOpsBot)
        await _ready_before_on_ready(bot, fake)


async def test_sharded_bot_is_not_ready_with_one_shard_of_two() -> None:
    bot = ShardedChatOpsBot.__new__(ShardedChatOpsBot)
    bot._shards_up = set()
    bot.shard_ids = [0, 1]
    bot.gateway_up = False
    await bot.on_shard_connect(0)
    assert not bot.gateway_up
    await bot.on_shard_connect(1)
    assert bot.gateway_up
    await bot.on_shard_disconnect(0)
    assert not bot.gateway_up
    await bot.on_shard_resumed(0)
    assert bot.gateway_up


async def test_start_up_objects_are_frozen_once_ready_even_though_readyz_came_first(
    settings: Settings,
    fake: FakeDiscord,
    spans: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``gc.freeze()`` at the first ``on_ready``: the collector never walks start-up's objects
    again (tracing made the heap ~35k objects larger; without it every full collection
    walked them), and from then on collects less often. ``/readyz`` turning 200 earlier
    (at READY) must not skip it."""
    import bot.client as client_module

    frozen: list[bool] = []
    thresholds: list[tuple[int, ...]] = []
    monkeypatch.setattr(client_module.gc, "freeze", lambda: frozen.append(True))
    monkeypatch.setattr(client_module.gc, "set_threshold", lambda *t: thresholds.append(t))
    config = settings.model_copy(update={"discord_api_base": fake.api_base})
    bot = create_bot(config, guild_ready_timeout=0.05)
    task = asyncio.create_task(bot.start("sandbox-token"))
    try:
        await asyncio.wait_for(bot.wait_until_ready(), 10)
        await fake.say("!ping", timeout=5)
        assert frozen == [True]
        assert thresholds == [client_module.GC_THRESHOLDS]  # a young generation 10x CPython's
    finally:
        await bot.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
