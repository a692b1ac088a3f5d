"""Unknown commands: the closest ones suggested (never a hidden one), or silence when configured."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot.client import ChatOpsBot
from bot.config import Settings
from bot.harness import connected_bot
from bot.sandbox import FakeDiscord
from telemetry import schema
from tests.helpers.flag_rules import IS_ADMIN, boolean_flag, write_flags
from tests.helpers.sandbox_chat import ask, settled_root


@pytest.fixture
def settings(settings: Settings) -> Settings:
    write_flags(settings.flags_file, {"beta-commands": boolean_flag(IS_ADMIN)})
    return settings


async def test_a_typo_suggests_the_closest_command(bot: ChatOpsBot, fake: FakeDiscord) -> None:
    _, answer = await ask(fake, "!rol 2d6")
    assert answer["content"] == "I don't know `!rol`; did you mean `!roll`?"


async def test_a_name_close_to_nothing_points_at_help(bot: ChatOpsBot, fake: FakeDiscord) -> None:
    _, answer = await ask(fake, "!frobnicate")
    assert "did you mean" not in answer["content"]
    assert "`!help`" in answer["content"]


async def test_several_close_names_are_all_offered(bot: ChatOpsBot, fake: FakeDiscord) -> None:
    _, answer = await ask(fake, "!ard")
    assert "`!card`" in answer["content"]


async def test_a_hidden_command_is_never_suggested_to_those_it_is_hidden_from(
    bot: ChatOpsBot, fake: FakeDiscord
) -> None:
    _, typo = await ask(fake, "!betaa")
    assert "`!beta`" not in typo["content"]
    _, hidden = await ask(fake, "!beta")
    assert hidden["content"].startswith("I don't know `!beta`")
    assert "did you mean `!beta`" not in hidden["content"]
    _, allowed = await ask(fake, "!betaa", author=fake.world.owner)
    assert "did you mean `!beta`?" in allowed["content"]


@pytest.fixture
async def silent_bot(
    settings: Settings, fake: FakeDiscord, spans: InMemorySpanExporter
) -> AsyncIterator[ChatOpsBot]:
    quiet = settings.model_copy(update={"silent_unknown_commands": True})
    async with connected_bot(quiet, fake, guild_ready_timeout=0.05) as running:
        yield running


async def test_silent_setting_leaves_unknown_and_hidden_commands_unanswered_but_traced(
    silent_bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    for line in ("!frobnicate", "!rol 2d6", "!beta"):
        message = fake.send_message(line)
        root = await settled_root(spans, message)
        assert root.attributes[schema.OUTCOME] == "unknown_command", line
        replies = [m for m in fake.bot_messages if m.get("message_reference")]
        assert [
            m for m in replies if m["message_reference"]["message_id"] == message["id"]
        ] == [], line
    _, answer = await ask(fake, "!roll 2d6")
    assert "2d6" in answer["content"]
