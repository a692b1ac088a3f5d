"""Feature flags through the real bot over the fake Discord: checks, help, reload, spans."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from discord.ext import commands
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from bot.client import ChatOpsBot
from bot.config import Settings
from bot.harness import connected_bot
from bot.sandbox import FakeDiscord
from commands.toolkit.flag_checks import flag_check, requires_flag
from commands.toolkit.replies import reply
from telemetry import schema
from tests.helpers.flag_rules import IS_ADMIN, boolean_flag, users, write_flags
from tests.helpers.sandbox_chat import ask
from tests.helpers.trace_finders import children, root_of


def break_file(path: Path) -> str:
    """Make ``path`` invalid JSON (newer mtime); returns the good text."""
    good = path.read_text()
    path.write_text(good.replace('"state"', '"state":', 1))
    mtime = time.time() + 10
    os.utime(path, (mtime, mtime))
    return good


class Ops(commands.Cog):
    @commands.command(help="Restart a container.")
    @requires_flag("aci-operator")
    async def restart(self, ctx: commands.Context[Any]) -> None:
        await reply(ctx, "restarted")

    @commands.command(help="A secret command.")
    @requires_flag("secret-beta", hidden=True)
    async def secret(self, ctx: commands.Context[Any]) -> None:
        await reply(ctx, "psst")

    @commands.command(help="A new feature that is on unless the flag says otherwise.")
    @commands.check(flag_check("shiny", default=True))
    async def shiny(self, ctx: commands.Context[Any]) -> None:
        await reply(ctx, "shiny")


@pytest.fixture
def flag_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"flags_poll_ms": 50})


@pytest.fixture
async def flagged(
    flag_settings: Settings, fake: FakeDiscord, spans: InMemorySpanExporter
) -> AsyncIterator[ChatOpsBot]:
    """The bot with the ``Ops`` cog; a test writes the flag file first (or not)."""
    async with connected_bot(flag_settings, fake, guild_ready_timeout=0.05) as running:
        await running.add_cog(Ops())
        yield running


def owner(fake: FakeDiscord) -> dict[str, Any]:
    return fake.world.owner


@pytest.fixture
def ops_flags(flag_settings: Settings) -> Path:
    write_flags(
        flag_settings.flags_file,
        {
            "aci-operator": boolean_flag({"or": [IS_ADMIN, users("1")]}),
            "secret-beta": boolean_flag(IS_ADMIN),
        },
    )
    return flag_settings.flags_file


async def test_a_permission_flag_lets_an_admin_in(
    ops_flags: Path, flagged: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    message, answer = await ask(fake, "!restart web", author=owner(fake))
    assert answer["content"] == "restarted"
    assert root_of(spans, message).attributes[schema.OUTCOME] == "ok"


async def test_a_denied_user_is_told_which_command_and_the_outcome_is_denied(
    ops_flags: Path, flagged: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    message, answer = await ask(fake, "!restart web")
    assert answer["content"] == "You can't use `!restart`."
    root = root_of(spans, message)
    assert root.attributes[schema.OUTCOME] == "denied"
    assert "aci-operator" in str(root.attributes[schema.ERROR_MESSAGE])
    assert root.status.status_code is StatusCode.UNSET


async def test_listed_users_and_roles_are_matched_as_string_ids(
    flag_settings: Settings, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    ops_role = fake.guild.role_id("ops")
    olga = fake.add_user("olga", role_ids=[ops_role])
    write_flags(
        flag_settings.flags_file,
        {
            "aci-operator": boolean_flag(
                {
                    "or": [
                        users(fake.user["id"]),
                        {"some": [{"var": "roles"}, {"in": [{"var": ""}, [str(ops_role)]]}]},
                    ]
                }
            )
        },
    )
    async with connected_bot(flag_settings, fake, guild_ready_timeout=0.05) as running:
        await running.add_cog(Ops())
        _, by_id = await ask(fake, "!restart web")
        _, by_role = await ask(fake, "!restart web", author=olga)
        _, admin = await ask(fake, "!restart web", author=owner(fake))
    assert by_id["content"] == "restarted"
    assert by_role["content"] == "restarted"
    assert admin["content"] == "You can't use `!restart`."


async def test_a_hidden_flag_answers_as_for_an_unknown_command(
    ops_flags: Path, flagged: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    message, answer = await ask(fake, "!secret")
    assert answer["content"] == "I don't know `!secret`. `!help` lists what I can do."
    root = root_of(spans, message)
    assert root.attributes[schema.OUTCOME] == "unknown_command"
    _, help_answer = await ask(fake, "!help secret")
    assert help_answer["content"] == 'No command called "secret" found.'
    _, allowed = await ask(fake, "!secret", author=owner(fake))
    assert allowed["content"] == "psst"


async def test_help_lists_only_what_the_asker_may_run_with_one_span_per_flag(
    ops_flags: Path, flagged: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    message, alice_help = await ask(fake, "!help")
    _, owner_help = await ask(fake, "!help", author=owner(fake))
    for name in ("restart", "secret", "beta"):
        assert f"  {name} " not in alice_help["content"]
    for name in ("restart", "secret", "ping"):
        assert f"  {name} " in owner_help["content"]
    # A flag missing from the file leaves a feature flag at its code default (on).
    assert "  ping " in alice_help["content"] and "  shiny " in alice_help["content"]
    flag_spans = [
        s.name for s in children(spans, root_of(spans, message)) if s.name.startswith("feature")
    ]
    assert len(flag_spans) == len(set(flag_spans)), flag_spans
    assert schema.FLAG_SPAN_PREFIX + "aci-operator" in flag_spans


async def test_an_edited_flag_file_is_picked_up_without_a_restart(
    ops_flags: Path, flagged: ChatOpsBot, fake: FakeDiscord
) -> None:
    _, before = await ask(fake, "!restart web")
    assert before["content"] == "You can't use `!restart`."
    write_flags(ops_flags, {"aci-operator": boolean_flag(users(fake.user["id"]))})
    deadline = time.monotonic() + 5
    while True:
        _, after = await ask(fake, "!restart web")
        if after["content"] == "restarted" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert after["content"] == "restarted"


async def test_a_broken_flag_file_warns_once_and_permission_flags_fail_closed(
    flag_settings: Settings,
    fake: FakeDiscord,
    spans: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    flag_settings.flags_file.write_text('{"flags": {"aci-operator": {"state": "ENABLED",,}}}')
    caplog.set_level(logging.WARNING)
    async with connected_bot(flag_settings, fake, guild_ready_timeout=0.05) as running:
        await running.add_cog(Ops())
        _, denied = await ask(fake, "!restart web", author=owner(fake))
        _, feature = await ask(fake, "!shiny")
        await asyncio.sleep(0.3)  # several polls of the broken file
        await ask(fake, "!restart web", author=owner(fake))
    assert denied["content"] == "You can't use `!restart`."
    assert feature["content"] == "shiny"  # a feature flag falls back to its code default
    warnings = [r.getMessage() for r in caplog.records if r.name == "commands.toolkit.flags"]
    assert len(warnings) == 1, warnings
    assert "line 1, column" in warnings[0] and "permission flags deny" in warnings[0]
    assert not [r for r in caplog.records if r.name.startswith("openfeature")]


async def test_a_missing_flag_file_fails_closed(
    flagged: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    message, answer = await ask(fake, "!restart web", author=owner(fake))
    assert answer["content"] == "You can't use `!restart`."
    (flag_span,) = [
        s for s in children(spans, root_of(spans, message)) if s.name.startswith("feature")
    ]
    assert flag_span.attributes[schema.FLAG_REASON] == "error"
    assert flag_span.attributes[schema.FLAG_ERROR_TYPE] == "provider_not_ready"
    assert "file not found" in str(flag_span.attributes[schema.FLAG_ERROR_MESSAGE])


async def test_each_evaluation_is_a_child_span_with_the_semantic_conventions(
    ops_flags: Path, flagged: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    message, _ = await ask(fake, "!restart web", author=owner(fake))
    root = root_of(spans, message)
    (span,) = [s for s in children(spans, root) if s.name.startswith("feature")]
    assert span.name == "feature_flag.evaluate aci-operator"
    assert span.end_time is not None and span.start_time is not None
    assert span.end_time > span.start_time
    attrs = span.attributes
    assert attrs[schema.FLAG_KEY] == "aci-operator"
    assert attrs[schema.FLAG_VARIANT] == "on"
    assert attrs[schema.FLAG_VALUE] is True
    assert attrs[schema.FLAG_REASON] == "targeting_match"
    assert attrs[schema.FLAG_PROVIDER] == "FlagdProvider"
    assert attrs[schema.FLAG_CONTEXT_ID] == str(owner(fake)["id"])
    assert attrs[schema.COMMAND] == "restart"  # trace fields reach it too


async def test_a_sensitive_flag_value_is_never_recorded(
    flag_settings: Settings, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    write_flags(
        flag_settings.flags_file,
        {"aci-operator": boolean_flag(IS_ADMIN, sensitive=True)},
    )
    async with connected_bot(flag_settings, fake, guild_ready_timeout=0.05) as running:
        await running.add_cog(Ops())
        message, _ = await ask(fake, "!restart web", author=owner(fake))
    (span,) = [s for s in children(spans, root_of(spans, message)) if s.name.startswith("feat")]
    assert schema.FLAG_VALUE not in span.attributes
    assert span.attributes[schema.FLAG_VARIANT] == "on"


async def test_a_broken_edit_fails_closed_until_the_file_is_fixed(
    ops_flags: Path, flagged: ChatOpsBot, fake: FakeDiscord
) -> None:
    _, before = await ask(fake, "!restart web", author=owner(fake))
    assert before["content"] == "restarted"
    good = break_file(ops_flags)
    await asyncio.sleep(0.3)
    _, broken = await ask(fake, "!restart web", author=owner(fake))
    assert broken["content"] == "You can't use `!restart`."
    write_flags(ops_flags, json.loads(good)["flags"], later=20)
    await asyncio.sleep(0.3)
    _, fixed = await ask(fake, "!restart web", author=owner(fake))
    assert fixed["content"] == "restarted"
