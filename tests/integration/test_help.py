"""``!help`` and ``/help``: whole signatures, every parameter described, slash help private."""

from __future__ import annotations

from pathlib import Path

import pytest
from discord.ext import commands
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot.client import ChatOpsBot
from bot.config import Settings
from bot.sandbox import FakeDiscord
from commands.help import parameter_description
from tests.fakes.function import FakeFunction
from tests.helpers.commands_toml import COMMANDS
from tests.helpers.sandbox_chat import ask, is_ephemeral, run_slash


@pytest.fixture
def settings(settings: Settings, function_api: FakeFunction, tmp_path: Path) -> Settings:
    commands_file = tmp_path / "commands.toml"
    commands_file.write_text(COMMANDS.format(base=function_api.url))
    return settings.model_copy(update={"commands_file": commands_file})


def test_every_parameter_of_every_command_has_a_description(bot: ChatOpsBot) -> None:
    missing = [
        f"{command.qualified_name} {name}"
        for command in bot.walk_commands()
        for name, parameter in command.clean_params.items()
        if not parameter_description(command, parameter)
    ]
    assert missing == []


def test_every_command_has_a_description(bot: ChatOpsBot) -> None:
    assert [c.qualified_name for c in bot.walk_commands() if not c.short_doc] == []


async def test_help_for_a_command_shows_its_signature_and_parameter(
    bot: ChatOpsBot, fake: FakeDiscord
) -> None:
    _, answer = await ask(fake, "!help roll")
    text = answer["content"]
    assert "!roll <dice>" in text
    assert "dice Dice to roll, like 2d6 or d20" in text
    assert "No description given" not in text


async def test_help_for_an_http_backed_command_describes_its_argument(
    bot: ChatOpsBot, fake: FakeDiscord
) -> None:
    _, answer = await ask(fake, "!help relationships")
    assert "No description given" not in answer["content"]
    assert "!relationships" in answer["content"]


async def test_help_for_a_group_lists_signatures_without_placeholders(
    bot: ChatOpsBot, fake: FakeDiscord
) -> None:
    for line in ("!help aci", "!help aci restart", "!help builds", "!help mtg"):
        _, answer = await ask(fake, line)
        assert "No description given" not in answer["content"], line


async def test_help_listing_has_no_invisible_characters_and_other_comes_last(
    bot: ChatOpsBot, fake: FakeDiscord
) -> None:
    _, answer = await ask(fake, "!help")
    text = answer["content"]
    assert "\u200b" not in text
    headings = [line for line in text.splitlines() if line.endswith(":")]
    assert headings[-1] == "Other:"
    assert headings[:-1] == sorted(headings[:-1])


async def test_slash_help_answers_privately(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    answer, _, _ = await run_slash(fake, spans, "/help")
    assert is_ephemeral(answer)
    assert "roll" in answer["content"] and "\u200b" not in answer["content"]
    answer, _, _ = await run_slash(fake, spans, "/help command:roll")
    assert is_ephemeral(answer)
    assert "<dice>" in answer["content"]


def test_parameter_description_prefers_the_text_parameter() -> None:
    @commands.command()
    async def greet(
        ctx: commands.Context[object],
        who: str = commands.parameter(description="Whom to greet"),
    ) -> None:
        """Say hello."""

    assert parameter_description(greet, greet.clean_params["who"]) == "Whom to greet"
