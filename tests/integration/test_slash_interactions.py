"""Deferral, autocomplete, buttons linked to their command's trace, and command sync."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import discord
import pytest
from click.testing import CliRunner
from discord.ext import commands
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from bot.cli.main import cli
from bot.client import ChatOpsBot
from bot.config import Settings
from bot.harness import connected_bot
from bot.sandbox import FakeDiscord
from bot.sync import sync_commands
from commands.toolkit.hybrid import hybrid_command
from commands.toolkit.replies import reply, respond
from commands.toolkit.views import TracedView
from telemetry import schema
from tests.fakes.catfact import FACT, FakeCatFacts
from tests.fakes.scryfall import FakeScryfall
from tests.helpers.sandbox_chat import is_ephemeral, run_slash, until
from tests.helpers.trace_finders import children, roots

DEFERRED = 5


@pytest.fixture
def settings(settings: Settings, catfact_api: FakeCatFacts, scryfall_api: FakeScryfall) -> Settings:
    return settings.model_copy(
        update={
            "catfact_api_url": catfact_api.url,
            "scryfall_api_url": scryfall_api.url,
            "slash_defer_after_s": 0.3,
        }
    )


class Confirm(TracedView):
    @discord.ui.button(label="Confirm", custom_id="confirm")
    async def confirm(
        self, interaction: discord.Interaction[Any], _: discord.ui.Button[Any]
    ) -> None:
        await respond(interaction, "Confirmed.")

    @discord.ui.button(label="Break", custom_id="break")
    async def broken(
        self, interaction: discord.Interaction[Any], _: discord.ui.Button[Any]
    ) -> None:
        raise RuntimeError("button internals")


class Slow(commands.Cog):
    @hybrid_command(help="Thinks for a while.")
    async def ponder(self, ctx: commands.Context[Any]) -> None:
        await asyncio.sleep(0.8)
        await reply(ctx, "Pondered.")

    @hybrid_command(help="Asks before it acts.")
    async def risky(self, ctx: commands.Context[Any]) -> None:
        await reply(ctx, "Sure?", view=Confirm(timeout=30))


async def test_an_expensive_command_defers_before_calling_the_slow_api(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, catfact_api: FakeCatFacts
) -> None:
    catfact_api.then(delay=1.0)
    answer, root, interaction = await run_slash(fake, spans, "/catfact")
    assert answer["content"] == f"\U0001f431 {FACT}"
    assert interaction.callbacks[0]["type"] == DEFERRED
    assert interaction.followups == [answer]  # the follow-up replaced "thinking…"
    (defer,) = children(spans, root, schema.DEFER_SPAN)
    (fetch,) = children(spans, root, "catfact.fetch")
    assert defer.end_time is not None and fetch.start_time is not None
    assert defer.end_time <= fetch.start_time
    assert root.attributes[schema.OUTCOME] == "ok"


async def test_a_cheap_command_that_turns_out_slow_is_deferred_by_the_timer(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    await bot.add_cog(Slow())
    answer, root, interaction = await run_slash(fake, spans, "/ponder")
    assert answer["content"] == "Pondered."
    assert [c["type"] for c in interaction.callbacks] == [DEFERRED]
    assert len(children(spans, root, schema.DEFER_SPAN)) == 1
    _quick, _, quick_interaction = await run_slash(fake, spans, "/about")
    assert quick_interaction.callbacks[0]["type"] == 4  # answered at once: no deferral
    assert not quick_interaction.deferred


async def test_card_names_autocomplete_from_scryfall_cheaply(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, scryfall_api: FakeScryfall
) -> None:
    choices = await fake.autocomplete("/card name:hell")
    assert choices == [
        {"name": "Utvara Hellkite", "value": "Utvara Hellkite"},
        {"name": "Thundermaw Hellkite", "value": "Thundermaw Hellkite"},
    ]
    assert await fake.autocomplete("/card hell") == choices  # cached: no second call
    assert await fake.autocomplete("/card h") == []  # too short to ask
    assert len([r for r in scryfall_api.requests if r.path == "/cards/autocomplete"]) == 1
    await until(lambda: len(autocomplete_roots(spans)) == 3)
    first = autocomplete_roots(spans)[0]
    assert first.name == "autocomplete card"
    assert first.attributes[schema.INTERACTION_TYPE] == "autocomplete"
    assert first.attributes[schema.OUTCOME] == "autocomplete"  # not a command run
    assert next(s.name for s in children(spans, first)) == "scryfall.autocomplete"


def autocomplete_roots(spans: InMemorySpanExporter) -> list[Any]:
    return [s for s in roots(spans) if s.attributes.get(schema.INTERACTION_TYPE) == "autocomplete"]


@pytest.mark.parametrize("form", ["!risky", "/risky"])
async def test_a_button_click_is_its_own_trace_linked_to_the_command(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, form: str
) -> None:
    await bot.add_cog(Slow())
    if form.startswith("!"):
        shown = await fake.say(form)
    else:
        shown, _, _ = await run_slash(fake, spans, form)
    assert shown is not None and shown["components"]
    await until(lambda: any(s.name == "command risky" for s in spans.get_finished_spans()))
    (command_root,) = [s for s in spans.get_finished_spans() if s.name == "command risky"]

    answer = await fake.click(shown, "confirm")
    assert answer is not None and answer["content"] == "Confirmed."
    await until(lambda: any(s.name == "component confirm" for s in spans.get_finished_spans()))
    (click,) = [s for s in spans.get_finished_spans() if s.name == "component confirm"]
    assert click.parent is None
    assert click.context.trace_id != command_root.context.trace_id
    (link,) = click.links
    assert link.context.span_id == command_root.context.span_id
    assert link.context.trace_id == command_root.context.trace_id
    assert click.attributes[schema.INTERACTION_TYPE] == "component"
    assert click.attributes[schema.COMPONENT_ID] == "confirm"
    assert click.attributes[schema.COMMAND] == "risky"
    assert click.attributes[schema.OUTCOME] == "ok"
    assert click.attributes[schema.MESSAGE_ID] == shown["id"]


async def test_a_failing_button_answers_privately_with_its_trace(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    await bot.add_cog(Slow())
    shown, _, _ = await run_slash(fake, spans, "/risky")
    answer = await fake.click(shown, "break")
    assert answer is not None and is_ephemeral(answer)
    await until(lambda: any(s.name == "component break" for s in spans.get_finished_spans()))
    (click,) = [s for s in spans.get_finished_spans() if s.name == "component break"]
    assert f"{click.context.trace_id:032x}" in answer["content"]
    assert "button internals" not in answer["content"]
    assert click.status.status_code is StatusCode.ERROR
    assert click.attributes[schema.OUTCOME] == "error"


async def test_the_bot_does_not_register_commands_when_it_starts(
    bot: ChatOpsBot, fake: FakeDiscord
) -> None:
    assert not [r for r in fake.requests if r.path.startswith("/applications/")]


async def test_sync_commands_overwrites_the_global_commands(
    settings: Settings, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    local = settings.model_copy(update={"discord_api_base": fake.api_base})
    synced = await sync_commands(local, "test-token")
    app_id = fake.bot_user["id"]
    (put,) = [r for r in fake.requests if r.method == "PUT"]
    assert put.path == f"/applications/{app_id}/commands"
    names = {c["name"] for c in put.json}
    assert {"roll", "catfact", "card", "help"} <= names
    assert {c.name for c in synced} == names
    roll = next(c for c in put.json if c["name"] == "roll")
    assert roll["options"][0]["name"] == "dice" and roll["options"][0]["required"]
    assert not fake.gateway.connections  # a login, no gateway


async def test_sync_commands_for_one_guild_and_slash_uses_what_was_registered(
    settings: Settings, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    local = settings.model_copy(update={"discord_api_base": fake.api_base})
    await sync_commands(local, "test-token", guild_id=fake.guild.id)
    (put,) = [r for r in fake.requests if r.method == "PUT"]
    assert put.path == f"/applications/{fake.bot_user['id']}/guilds/{fake.guild.id}/commands"
    registered = fake.interactions.registered[fake.guild.id]
    async with connected_bot(settings, fake, guild_ready_timeout=0.05):
        answer, _root, interaction = await run_slash(fake, spans, "/roll 3d4")
    assert interaction.payload["data"]["guild_id"] == str(fake.guild.id)
    assert interaction.payload["data"]["id"] in {c["id"] for c in registered}
    assert answer["content"].startswith("\U0001f3b2 3d4:")


def test_sync_commands_without_a_token_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {"DISCORD_TOKEN": "", "COMMANDS_FILE": str(tmp_path / "none.toml")}
    result = CliRunner().invoke(cli, ["sync-commands"], env=env)
    assert result.exit_code == 2
    assert result.output.strip() == "chatops: DISCORD_TOKEN is not set"


@pytest.mark.slow
def test_console_runs_a_slash_command(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "SPAN_STORE": "off",
        "FLAGS_FILE": str(tmp_path / "flags.json"),
    }
    env.pop("COMMANDS_FILE", None)  # the default, commands.toml in tmp_path: absent, so none
    done = subprocess.run(
        [sys.executable, "-m", "bot", "console", "-c", "/roll dice:2d6", "-c", "/nope"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "bot> \U0001f3b2 2d6:" in done.stdout
    assert "command roll" in done.stdout and "discord.send" in done.stdout
    # The console prints the stable HTTP names, the callback's token redacted.
    assert "http.request.method=POST" in done.stdout
    assert "http.response.status_code=200" in done.stdout
    assert "/{token}/callback" in done.stdout
    assert "http.method=" not in done.stdout and "http.url=" not in done.stdout
    assert "no slash command /nope is registered" in done.stdout
