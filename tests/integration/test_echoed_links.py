"""Text a user chose and the bot repeats never becomes a masked link, nor a link preview.

A masked link shows text of the user's choosing over a URL of their choosing, in
the bot's voice ("[Claim your reward](https://evil.example)"); every message the
bot sends without an embed of its own is also sent with embeds suppressed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot.client import ChatOpsBot
from bot.config import Settings
from bot.sandbox import FakeDiscord
from tests.fakes.function import FakeFunction
from tests.helpers.commands_toml import COMMANDS
from tests.helpers.markdown import masked_links
from tests.helpers.sandbox_chat import exchange, run_slash

LINK = "[Claim-now](https://evil.example/x)"  # short enough to be quoted whole
SUPPRESS_EMBEDS = 1 << 2


@pytest.fixture
def settings(settings: Settings, function_api: FakeFunction, tmp_path: Path) -> Settings:
    path = tmp_path / "commands.toml"
    path.write_text(COMMANDS.format(base=function_api.url))
    return settings.model_copy(update={"commands_file": path})


@pytest.mark.parametrize(
    "line",
    [
        f"!roll {LINK}",
        f"!nope`{LINK}`",
        f"!builds a`{LINK}",
        f"!echo {LINK}",
        f"!relationships {LINK}",
        f"/roll dice:{LINK}",
    ],
    ids=["roll", "unknown-command", "builds", "http-body", "http-query", "slash"],
)
async def test_an_echoed_masked_link_is_shown_as_text_with_embeds_suppressed(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, line: str
) -> None:
    if line.startswith("/"):
        answer, _, _ = await run_slash(fake, spans, line)
    else:
        answer, _ = await exchange(fake, spans, line)
    assert "evil.example" in answer["content"]  # the user's text is still shown...
    assert masked_links(answer["content"]) == []  # ...but not as a link
    assert int(answer["flags"]) & SUPPRESS_EMBEDS
