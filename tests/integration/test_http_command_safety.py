"""What an HTTP-backed command will not do: take its key off its host, let a user steer its path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot.client import ChatOpsBot
from bot.config import Settings
from bot.sandbox import FakeDiscord
from telemetry import schema
from tests.fakes.function import FakeFunction
from tests.helpers.sandbox_chat import exchange

KEY = "function-key-value"
COMMANDS = """
[[command]]
name = "moved"
description = "An endpoint that redirects to another host."
url = "{base}/api/redirect"
query = {{ to = "{elsewhere}/api/text" }}
headers = {{ "x-functions-key" = "{key}" }}

[[command]]
name = "renamed"
description = "An endpoint that redirects within its own host."
url = "{base}/api/redirect"
query = {{ to = "{base}/api/text" }}
headers = {{ "x-functions-key" = "{key}" }}

[[command]]
name = "profile"
description = "A user's profile."
url = "{base}/api/users/{{arg1}}/profile"
headers = {{ "x-functions-key" = "{key}" }}
"""


@pytest.fixture
async def elsewhere() -> AsyncIterator[FakeFunction]:
    """Another origin, as a redirect might point to: it must never see the key."""
    async with FakeFunction() as server:
        yield server


@pytest.fixture
def settings(
    settings: Settings, function_api: FakeFunction, elsewhere: FakeFunction, tmp_path: Path
) -> Settings:
    path = tmp_path / "commands.toml"
    path.write_text(COMMANDS.format(base=function_api.url, elsewhere=elsewhere.url, key=KEY))
    return settings.model_copy(update={"commands_file": path, "external_retry_backoff_s": 0.05})


async def test_a_redirect_to_another_origin_is_not_followed_and_nothing_from_there_is_posted(
    bot: ChatOpsBot,
    fake: FakeDiscord,
    spans: InMemorySpanExporter,
    function_api: FakeFunction,
    elsewhere: FakeFunction,
) -> None:
    answer, root = await exchange(fake, spans, "!moved")
    assert elsewhere.requests == []
    assert "plain answer" not in answer["content"]
    assert answer["content"].startswith("The moved endpoint redirected to another host")
    assert root.attributes[schema.OUTCOME] == "error"
    assert len(function_api.requests) == 1  # a refused redirect is not retried


async def test_a_redirect_within_the_same_origin_is_followed_with_the_key(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, function_api: FakeFunction
) -> None:
    answer, root = await exchange(fake, spans, "!renamed")
    assert answer["content"] == "plain answer"
    assert [seen.path for seen in function_api.requests] == ["/api/redirect", "/api/text"]
    assert all(seen.headers["x-functions-key"] == KEY for seen in function_api.requests)
    assert root.attributes[schema.OUTCOME] == "ok"


@pytest.mark.parametrize("value", ["..", ".", '".."'], ids=["dotdot", "dot", "quoted"])
async def test_a_value_that_would_change_the_path_is_refused_as_bad_input(
    bot: ChatOpsBot,
    fake: FakeDiscord,
    spans: InMemorySpanExporter,
    function_api: FakeFunction,
    value: str,
) -> None:
    answer, root = await exchange(fake, spans, f"!profile {value}")
    assert answer["content"].startswith("That argument can't be used: it would change the path")
    assert root.attributes[schema.OUTCOME] == "bad_input"
    assert function_api.requests == []


@pytest.mark.parametrize(
    ("value", "segment"),
    [
        ("a/b", "a%2Fb"),
        ("../admin", "..%2Fadmin"),
        ("%2e%2e", "%252e%252e"),
        ("a?b#c", "a%3Fb%23c"),
        ("v1.2", "v1.2"),
        ('"Ada Lovelace"', "Ada%20Lovelace"),
    ],
)
async def test_a_value_stays_one_path_segment_sent_without_normalisation(
    bot: ChatOpsBot,
    fake: FakeDiscord,
    spans: InMemorySpanExporter,
    function_api: FakeFunction,
    value: str,
    segment: str,
) -> None:
    await exchange(fake, spans, f"!profile {value}")
    (request,) = function_api.requests
    assert request.raw_path == f"/api/users/{segment}/profile"
    assert request.raw_query == ""
