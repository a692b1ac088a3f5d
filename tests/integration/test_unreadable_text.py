"""Text that is not valid Unicode (a lone surrogate) is the user's bad input, never the bot's error.

Discord's JSON can carry ``\\ud800``; Python decodes it into a string that cannot
be encoded again, so any command that URL-encodes or stores it would fail.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot.client import ChatOpsBot
from bot.config import Settings
from bot.sandbox import FakeDiscord
from telemetry import schema
from telemetry.store import SqliteSpanExporter
from tests.fakes.function import FakeFunction
from tests.fakes.scryfall import FakeScryfall
from tests.helpers.sandbox_chat import exchange, run_slash

LONE = "\ud800"
COMMANDS = """
[[command]]
name = "profile"
description = "A user's profile."
url = "{base}/api/users/{{arg1}}/profile"
query = {{ q = "{{args}}" }}
"""


@pytest.fixture
def settings(
    settings: Settings, scryfall_api: FakeScryfall, function_api: FakeFunction, tmp_path: Path
) -> Settings:
    path = tmp_path / "commands.toml"
    path.write_text(COMMANDS.format(base=function_api.url))
    return settings.model_copy(update={"commands_file": path, "scryfall_api_url": scryfall_api.url})


@pytest.mark.parametrize(
    "line",
    [
        f"!mtg t:{LONE}",
        f"!profile {LONE}",
        f"!profile ok {LONE}",
        f"!roll {LONE}",
        f"/mtg query:{LONE}",
    ],
    ids=["mtg", "http-path", "http-query", "roll", "slash"],
)
async def test_a_lone_surrogate_is_bad_input_with_no_error_logged_and_no_call(
    bot: ChatOpsBot,
    fake: FakeDiscord,
    spans: InMemorySpanExporter,
    scryfall_api: FakeScryfall,
    function_api: FakeFunction,
    caplog: pytest.LogCaptureFixture,
    line: str,
) -> None:
    with caplog.at_level(logging.WARNING):
        if line.startswith("/"):
            answer, root, _ = await run_slash(fake, spans, line)
        else:
            answer, root = await exchange(fake, spans, line)
    assert answer["content"].startswith("That message has a character that isn't valid Unicode")
    assert root.attributes[schema.OUTCOME] == "bad_input"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert scryfall_api.requests == [] and function_api.requests == []


async def test_the_trace_of_such_a_message_can_still_be_stored(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    _, root = await exchange(fake, spans, f"!roll 2d6 {LONE}")
    assert root.attributes[schema.COMMAND_ARGS] == "2d6 \ufffd"
    store = SqliteSpanExporter(tmp_path / "spans.db", max_age=timedelta(days=1), max_bytes=10**7)
    try:
        assert store.export(spans.get_finished_spans()) is SpanExportResult.SUCCESS
    finally:
        store.shutdown()
