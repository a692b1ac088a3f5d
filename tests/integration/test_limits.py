"""Bot-wide abuse limits: each surfaces as a reply and an outcome, never a hang."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from discord.ext import commands
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot.config import Settings
from bot.harness import connected_bot
from bot.sandbox import FakeDiscord
from telemetry import schema
from tests.helpers.sandbox_chat import is_ephemeral, run_slash, until
from tests.helpers.trace_finders import message_root, root_of, roots


def outcomes(spans: InMemorySpanExporter) -> list[str]:
    return [
        str(s.attributes[schema.OUTCOME]) for s in roots(spans) if schema.OUTCOME in s.attributes
    ]


async def test_a_user_firing_commands_too_fast_is_told_to_slow_down(
    settings: Settings, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    limited = settings.model_copy(update={"user_command_rate": 3, "user_command_per_s": 60})
    async with connected_bot(limited, fake, guild_ready_timeout=0.05):
        answers = [await fake.say("!about") for _ in range(4)]
        other = fake.add_user("bob")
        assert await fake.say("!about", author=other) is not None
    assert answers[3] is not None and answers[3]["content"].startswith("Slow down: try again in")
    assert outcomes(spans) == ["ok", "ok", "ok", "cooldown", "ok"]


async def test_a_flood_from_one_user_is_answered_with_at_most_the_limit_plus_one_post(
    settings: Settings, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    limited = settings.model_copy(update={"user_command_rate": 3, "user_command_per_s": 60})
    async with connected_bot(limited, fake, guild_ready_timeout=0.05):
        # Known and unknown commands alike: each would be answered, so each counts.
        flood = [fake.send_message(text) for text in ["!about"] * 20 + ["!nope"] * 20]
        await until(lambda: all(message_root(spans, m["id"]) for m in flood), within=30)
        # Another user is answered at once, not queued behind the flood.
        assert await fake.say("!about", author=fake.add_user("bob")) is not None
    flood_ids = {int(m["id"]) for m in flood}
    posts = [
        post
        for post in fake.bot_messages
        if int((post.get("message_reference") or {}).get("message_id", 0)) in flood_ids
    ]
    assert len(posts) == 3 + 1, [post["content"] for post in posts]
    assert sum(post["content"].startswith("Slow down: try again in") for post in posts) == 1
    flood_outcomes = Counter(str(root_of(spans, m).attributes[schema.OUTCOME]) for m in flood)
    assert flood_outcomes == {"ok": 3, "cooldown": 37}


async def test_every_throttled_slash_command_is_told_privately(
    settings: Settings, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    limited = settings.model_copy(update={"user_command_rate": 1, "user_command_per_s": 60})
    async with connected_bot(limited, fake, guild_ready_timeout=0.05):
        answers = [(await run_slash(fake, spans, "/about"))[0] for _ in range(4)]
    for answer in answers[1:]:
        assert answer["content"].startswith("Slow down: try again in")
        assert is_ephemeral(answer)


async def test_overlong_arguments_are_refused_before_the_command_runs(
    settings: Settings, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    capped = settings.model_copy(update={"max_argument_chars": 20})
    async with connected_bot(capped, fake, guild_ready_timeout=0.05):
        answer = await fake.say("!roll " + "9" * 50 + "d6")
    assert answer is not None
    assert answer["content"] == "That's too long: arguments are limited to 20 characters."
    assert outcomes(spans) == ["bad_input"]


class Slow(commands.Cog):
    def __init__(self) -> None:
        self.release = asyncio.Event()

    @commands.command(extras={"expensive": True})
    async def crunch(self, ctx: commands.Context[Any]) -> None:
        await self.release.wait()
        await ctx.send("done")


async def test_expensive_commands_are_bounded_across_the_bot(
    settings: Settings, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    bounded = settings.model_copy(update={"max_concurrent_expensive": 1})
    async with connected_bot(bounded, fake, guild_ready_timeout=0.05) as bot:
        slow = Slow()
        await bot.add_cog(slow)
        fake.send_message("!crunch")
        await asyncio.sleep(0.2)
        busy = await fake.say("!crunch", author=fake.add_user("bob"))
        slow.release.set()
        await asyncio.sleep(0.2)
    assert busy is not None and "busy" in busy["content"]
    assert sorted(outcomes(spans)) == ["cooldown", "ok"]
