"""Every command as a slash command through the fake: answers, spans, errors, permissions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from discord.ext import commands
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv.attributes.http_attributes import HTTP_REQUEST_METHOD
from opentelemetry.semconv.attributes.url_attributes import URL_FULL
from opentelemetry.trace import StatusCode

from bot.client import ChatOpsBot
from bot.config import Settings
from bot.harness import connected_bot
from bot.sandbox import FakeDiscord
from commands.toolkit.hybrid import hybrid_command
from telemetry import schema
from tests.fakes.catfact import FACT, FakeCatFacts
from tests.fakes.function import FakeFunction
from tests.fakes.scryfall import FakeScryfall
from tests.helpers.commands_toml import COMMANDS
from tests.helpers.flag_rules import boolean_flag, users, write_flags
from tests.helpers.sandbox_chat import is_ephemeral, run_slash
from tests.helpers.trace_finders import children, only_child

ALL_COMMANDS = {
    *("ping", "about", "roll", "catfact", "mtg", "card", "whoami", "beta", "flip", "help"),
    *("builds", "aci"),
}


@pytest.fixture
def settings(
    settings: Settings,
    catfact_api: FakeCatFacts,
    scryfall_api: FakeScryfall,
    function_api: FakeFunction,
    tmp_path: Path,
) -> Settings:
    commands_file = tmp_path / "commands.toml"
    commands_file.write_text(COMMANDS.format(base=function_api.url))
    write_flags(
        settings.flags_file,
        {
            "coin-flip": boolean_flag(users("nobody")),
            "beta-commands": boolean_flag(users("nobody")),
            "plain-command": boolean_flag(users("nobody")),
        },
    )
    return settings.model_copy(
        update={
            "catfact_api_url": catfact_api.url,
            "scryfall_api_url": scryfall_api.url,
            "commands_file": commands_file,
            "external_retry_backoff_s": 0.05,
        }
    )


def test_every_bang_command_is_also_a_slash_command(bot: ChatOpsBot) -> None:
    slash = {c.name for c in bot.tree.get_commands()}
    assert slash >= ALL_COMMANDS | {"relationships", "echo", "plain"}
    assert {c.name for c in bot.commands} <= slash


async def test_slash_roll_answers_with_the_message_schema_plus_the_interaction(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    answer, root, interaction = await run_slash(fake, spans, "/roll 2d6")
    assert answer["content"].startswith("\U0001f3b2 2d6:")
    assert not is_ephemeral(answer)
    assert root.name == "command roll"
    attrs = root.attributes
    assert attrs[schema.INTERACTION_ID] == str(interaction.id)
    assert attrs[schema.INTERACTION_TYPE] == "application_command"
    assert attrs[schema.COMMAND] == "roll"
    assert attrs[schema.COMMAND_ARGS] == "dice:2d6"
    assert attrs[schema.OUTCOME] == "ok"
    assert attrs[schema.GUILD_ID] == str(fake.guild.id)
    assert attrs[schema.AUTHOR_ID] == str(fake.user["id"])
    assert attrs[schema.CHANNEL_ID] == str(fake.channel_id)
    assert attrs[schema.RESPONSE] == answer["content"]
    assert root.status.status_code is StatusCode.UNSET
    post = only_child(spans, root, schema.SEND_SPAN)  # the send is its callback POST
    assert children(spans, post) == []
    assert post.attributes[HTTP_REQUEST_METHOD] == "POST"
    assert "/callback" in str(post.attributes[URL_FULL])
    assert interaction.payload["token"] not in str(post.attributes[URL_FULL])
    assert post.attributes[schema.COMMAND] == "roll"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/ping", "Pong! gateway"),
        ("/about", "chatops-bot "),
        ("/roll dice:d20", "\U0001f3b2 1d20:"),
        ("/whoami", "targetingKey "),
        ("/catfact", f"\U0001f431 {FACT}"),
        ("/card name:shivan", ""),
        ("/mtg t:dragon c:r", ""),
        ("/relationships args:bob", "and bob are friends"),
        ("/help", "```"),
        ("/help command:roll", "/roll"),
    ],
)
async def test_each_command_answers_as_a_slash_command(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, line: str, expected: str
) -> None:
    answer, root, _ = await run_slash(fake, spans, line)
    assert expected in answer["content"]
    assert root.attributes[schema.OUTCOME] == "ok"
    assert root.name == f"command {line[1:].split()[0]}"
    assert is_ephemeral(answer) == line.startswith("/help")  # help is for the asker only
    if not expected:
        assert answer["embeds"], answer


async def test_search_options_keep_the_whole_query(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, scryfall_api: FakeScryfall
) -> None:
    answer, root, _ = await run_slash(fake, spans, "/mtg t:dragon c:r cmc<=4")
    assert answer["embeds"][0]["title"] == "42 cards for t:dragon c:r cmc<=4"
    assert scryfall_api.requests[-1].query["q"] == "t:dragon c:r cmc<=4"
    assert root.attributes[schema.COMMAND_ARGS] == "query:t:dragon c:r cmc<=4"


async def test_bad_input_is_ephemeral_with_the_slash_usage(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    answer, root, _ = await run_slash(fake, spans, "/roll dice:lots")
    assert is_ephemeral(answer)
    assert "Usage: `/roll <dice>`" in answer["content"]
    assert root.attributes[schema.OUTCOME] == "bad_input"
    assert root.attributes[schema.ERROR_TYPE] == "BadArgument"
    assert root.status.status_code is StatusCode.UNSET


class Broken(commands.Cog):
    @hybrid_command(help="Always fails.")
    async def explode(self, ctx: commands.Context[Any]) -> None:
        raise RuntimeError("secret internals")


async def test_unexpected_error_is_ephemeral_names_the_trace_and_sets_error_status(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    await bot.add_cog(Broken())
    answer, root, _ = await run_slash(fake, spans, "/explode")
    assert is_ephemeral(answer)
    assert f"{root.context.trace_id:032x}" in answer["content"]
    assert "secret internals" not in answer["content"]
    assert root.attributes[schema.OUTCOME] == "error"
    assert root.attributes[schema.ERROR_TYPE] == "RuntimeError"
    assert root.status.status_code is StatusCode.ERROR


async def test_a_failing_api_after_the_deferral_answers_privately(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, catfact_api: FakeCatFacts
) -> None:
    catfact_api.then(status=503).then(status=503)
    answer, root, interaction = await run_slash(fake, spans, "/catfact")
    assert interaction.deferred
    assert is_ephemeral(answer)
    assert "cat-fact API answered 503" in answer["content"]
    assert interaction.original_deleted  # the public "thinking…" message is gone
    assert root.attributes[schema.OUTCOME] == "error"
    # The error reply's send span is its follow-up POST; the DELETE before it is its own.
    sends = children(spans, root, schema.SEND_SPAN)
    assert [s.attributes[HTTP_REQUEST_METHOD] for s in sends][-1] == "POST"
    assert "/webhooks/" in str(sends[-1].attributes[URL_FULL])
    (delete,) = [s for s in children(spans, root) if s.name == "DELETE"]
    assert str(delete.attributes[URL_FULL]).endswith("/messages/@original")


async def test_flag_denied_command_is_refused_privately(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    answer, root, _ = await run_slash(fake, spans, "/flip")
    assert answer["content"] == "You can't use `/flip`."
    assert is_ephemeral(answer)
    assert root.attributes[schema.OUTCOME] == "denied"
    assert root.status.status_code is StatusCode.UNSET


async def test_hidden_command_answers_as_if_unknown(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    answer, root, _ = await run_slash(fake, spans, "/beta")
    assert answer["content"].startswith("I don't know `/beta`.")
    assert is_ephemeral(answer)
    assert root.attributes[schema.OUTCOME] == "unknown_command"


async def test_flag_allowed_command_runs(
    settings: Settings, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    write_flags(settings.flags_file, {"coin-flip": boolean_flag(users(fake.user["id"]))})
    async with connected_bot(settings, fake, guild_ready_timeout=0.05):
        answer, root, _ = await run_slash(fake, spans, "/flip")
    assert answer["content"] in ("Heads.", "Tails.")
    assert root.attributes[schema.OUTCOME] == "ok"


async def test_a_command_discord_still_offers_but_the_bot_lacks_is_unknown(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    fake.interactions.registered[None] = [{"id": "1", "name": "gone", "type": 1, "options": []}]
    answer, root, _ = await run_slash(fake, spans, "/gone")
    assert answer["content"].startswith("I don't know `/gone`.")
    assert is_ephemeral(answer)
    assert root.name == "interaction"
    assert root.attributes[schema.OUTCOME] == "unknown_command"


async def test_the_bot_wide_rate_limit_applies_to_slash_commands(
    settings: Settings, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    limited = settings.model_copy(update={"user_command_rate": 2, "user_command_per_s": 60})
    async with connected_bot(limited, fake, guild_ready_timeout=0.05):
        answers = [(await run_slash(fake, spans, "/about"))[0] for _ in range(3)]
        # /help asks every command's checks; the asker still counts once.
        other = fake.add_user("bob")
        help_answer, _, _ = await run_slash(fake, spans, "/help", author=other)
    assert answers[2]["content"].startswith("Slow down: try again in")
    assert is_ephemeral(answers[2])
    assert "roll" in help_answer["content"] and "catfact" in help_answer["content"]


async def test_overlong_options_are_refused_before_the_command_runs(
    settings: Settings, fake: FakeDiscord, spans: InMemorySpanExporter, scryfall_api: FakeScryfall
) -> None:
    capped = settings.model_copy(update={"max_argument_chars": 20})
    async with connected_bot(capped, fake, guild_ready_timeout=0.05):
        answer, root, _ = await run_slash(fake, spans, "/mtg " + "x" * 40)
    assert answer["content"].startswith("That's too long")
    assert root.attributes[schema.OUTCOME] == "bad_input"
    assert scryfall_api.requests == []


async def test_slash_replies_never_ping_anyone(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    role = fake.guild.roles[0]["id"]
    answer, _, _ = await run_slash(fake, spans, f"/roll dice:<@&{role}> @everyone")
    assert answer["allowed_mentions"] == {"parse": []}


async def test_no_tracing_headers_reach_the_interaction_routes(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    await run_slash(fake, spans, "/catfact")
    for request in fake.requests:
        assert not {n.lower() for n in request.headers} & {"traceparent", "baggage"}
