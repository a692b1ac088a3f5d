"""``chatops sync-commands --guild ID --clear`` and the permissions Discord hides commands by."""

from __future__ import annotations

import asyncio
from pathlib import Path

import discord
from click.testing import CliRunner
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot.cli.main import cli
from bot.client import ChatOpsBot
from bot.harness import tree_payload
from bot.sandbox import FakeDiscord

MANAGE_GUILD = discord.Permissions(manage_guild=True).value


def _env(fake: FakeDiscord, tmp_path: Path) -> dict[str, str]:
    (tmp_path / "commands.toml").write_text("")
    return {
        "DISCORD_TOKEN": "test-token",
        "DISCORD_API_BASE": fake.api_base,
        "COMMANDS_FILE": str(tmp_path / "commands.toml"),
        "FLAGS_FILE": str(tmp_path / "flags.json"),
        "SPAN_STORE": "off",
        "OTEL_TRACES_EXPORTER": "none",
    }


async def test_guild_copies_are_registered_then_cleared_leaving_the_global_ones(
    fake: FakeDiscord, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    env = _env(fake, tmp_path)
    runner = CliRunner()
    guild = str(fake.guild.id)
    # The CLI runs its own event loop; the fake serves from this one meanwhile.
    synced = await asyncio.to_thread(runner.invoke, cli, ["sync-commands"], env=env)
    copy = ["sync-commands", "--guild", guild]
    copied = await asyncio.to_thread(runner.invoke, cli, copy, env=env)
    assert synced.exit_code == 0 and copied.exit_code == 0, (synced.output, copied.output)
    assert fake.interactions.registered[fake.guild.id]
    cleared = await asyncio.to_thread(
        runner.invoke, cli, ["sync-commands", "--guild", guild, "--clear"], env=env
    )
    assert cleared.exit_code == 0, cleared.output
    assert cleared.output.strip() == (
        f"removed the commands registered in guild {guild}; the global ones remain"
    )
    assert fake.interactions.registered[fake.guild.id] == []
    assert {c["name"] for c in fake.interactions.registered[None]} >= {"roll", "aci", "help"}


def test_clear_without_a_guild_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["sync-commands", "--clear"], env={"DISCORD_TOKEN": "x"})
    assert result.exit_code == 2
    assert result.output.strip() == (
        "chatops: --clear needs --guild ID (the global commands are replaced by a sync)"
    )


def test_aci_and_beta_are_hidden_from_members_without_manage_server(bot: ChatOpsBot) -> None:
    permissions = {c["name"]: c.get("default_member_permissions") for c in tree_payload(bot)}
    assert permissions["aci"] == MANAGE_GUILD
    assert permissions["beta"] == MANAGE_GUILD
    others = {name: value for name, value in permissions.items() if name not in {"aci", "beta"}}
    assert set(others.values()) == {None}, others
