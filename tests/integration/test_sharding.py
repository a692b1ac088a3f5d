"""SHARD_COUNT and SHARD_IDS: one process runs a range of shards; spans name the shard."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot.client import ShardedChatOpsBot
from bot.config import Settings
from bot.harness import connected_bot
from bot.sandbox import FakeDiscord
from telemetry import schema


async def _no_identify_wait(self: object, shard_id: int | None, *, initial: bool = False) -> None:
    """discord.py waits 5 s between shard IDENTIFYs for Discord's sake; the fake needs none."""


async def test_each_shard_answers_its_guilds_and_spans_name_the_shard(
    settings: Settings, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ShardedChatOpsBot, "before_identify_hook", _no_identify_wait)
    sharded = settings.model_copy(update={"shard_count": 2, "shard_ids": [0, 1]})
    async with (
        FakeDiscord(guild_count=6, shard_count=2) as fake,
        connected_bot(sharded, fake, guild_ready_timeout=0.05) as bot,
    ):
        assert isinstance(bot, ShardedChatOpsBot)
        assert fake.identify_count == 2
        expected: dict[str, int] = {}
        for guild in fake.guilds:
            channel = int(guild.channels[0]["id"])
            answer = await fake.say("!about", channel_id=channel, timeout=5)
            assert answer is not None, guild.name
            expected[str(guild.id)] = (guild.id >> 22) % 2
    roots = [s for s in spans.get_finished_spans() if s.name == "command about"]
    seen = {s.attributes[schema.GUILD_ID]: s.attributes[schema.SHARD_ID] for s in roots}
    assert seen == expected
    assert set(seen.values()) == {0, 1}


async def test_a_container_can_run_part_of_the_shards(
    settings: Settings, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ShardedChatOpsBot, "before_identify_hook", _no_identify_wait)
    second_half = settings.model_copy(update={"shard_count": 2, "shard_ids": [1]})
    async with (
        FakeDiscord(guild_count=6, shard_count=2) as fake,
        connected_bot(second_half, fake, guild_ready_timeout=0.05) as bot,
    ):
        assert fake.identify_count == 1
        assert {guild.shard_id for guild in bot.guilds} == {1}
