"""HTTP-backed commands from the commands file against a fake operator endpoint."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from bot.client import ChatOpsBot
from bot.config import Settings
from bot.sandbox import FakeDiscord
from telemetry import schema
from tests.fakes.function import FakeFunction
from tests.helpers.commands_toml import COMMANDS
from tests.helpers.sandbox_chat import exchange
from tests.helpers.trace_finders import children, only_child, trace_id


@pytest.fixture
def settings(settings: Settings, function_api: FakeFunction, tmp_path: Path) -> Settings:
    path = tmp_path / "commands.toml"
    path.write_text(COMMANDS.format(base=function_api.url))
    write_flag(settings.flags_file, enabled=True)
    return settings.model_copy(
        update={"commands_file": path, "external_retry_backoff_s": 0.05, "flags_poll_ms": 20}
    )


def write_flag(path: Path, *, enabled: bool) -> None:
    """A flag file where ``plain-command`` is on or off for everyone."""
    flag = {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "on" if enabled else "off",
    }
    path.write_text(json.dumps({"flags": {"plain-command": flag}}))


async def test_an_http_command_sends_traceparent_and_replies_with_the_mapped_field(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, function_api: FakeFunction
) -> None:
    answer, root = await exchange(fake, spans, '!relationships "Ada Lovelace & co"')
    user = str(fake.user["id"])
    assert answer["content"] == f"{user} and Ada Lovelace & co are friends"
    (request,) = function_api.requests
    assert request.query == {
        "user": user,
        "target": "Ada Lovelace & co",
        "guild": str(fake.guild.id),
    }
    assert "target=Ada+Lovelace+%26+co" in request.raw_query
    _version, sent_trace, parent_span, _ = request.headers["traceparent"].split("-")
    assert sent_trace == trace_id(root)
    assert "baggage" not in request.headers and "tracestate" not in request.headers
    assert request.headers["x-functions-key"] == "function-key-value"

    assert root.name == "command relationships"
    assert root.attributes[schema.OUTCOME] == "ok"
    call = only_child(spans, root, "relationships.call")
    assert call.attributes[schema.HTTP_COMMAND] == "relationships"
    assert call.attributes[schema.API_TRACE_PROPAGATED] is True
    (get,) = children(spans, call)
    # The endpoint's spans will hang under the HTTP client span.
    assert parent_span == f"{get.context.span_id:016x}"
    everything = repr([dict(s.attributes or {}) for s in spans.get_finished_spans()])
    assert "function-key-value" not in everything


async def test_a_post_body_is_templated_and_the_reply_too(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, function_api: FakeFunction
) -> None:
    answer, _ = await exchange(fake, spans, "!echo hello {author_id.__class__} there")
    user = str(fake.user["id"])
    assert answer["content"] == (
        f"{user} said hello {{author_id.__class__}} there in {fake.channel_id}"
    )
    (request,) = function_api.requests
    assert request.method == "POST"


async def test_a_plain_text_endpoint_is_replied_as_text(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    answer, _ = await exchange(fake, spans, "!plain")
    assert answer["content"] == "plain answer"


async def test_help_lists_the_declared_commands(bot: ChatOpsBot, fake: FakeDiscord) -> None:
    answer = await fake.say("!help")
    assert answer is not None
    assert "relationships How two people know each other." in answer["content"]
    assert "Endpoints:" in answer["content"]
    usage = await fake.say("!help relationships")
    assert usage is not None and "args <arg1>" in usage["content"]


async def test_a_missing_argument_is_bad_input_with_usage(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, function_api: FakeFunction
) -> None:
    answer, root = await exchange(fake, spans, "!relationships")
    assert answer["content"].startswith("This command needs 1 argument.")
    assert "Usage: `!relationships <arg1>`" in answer["content"]
    assert root.attributes[schema.OUTCOME] == "bad_input"
    assert function_api.requests == []


async def test_the_declared_cooldown_applies(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    await exchange(fake, spans, "!echo one")
    answer, root = await exchange(fake, spans, "!echo two")
    assert answer["content"].startswith("Slow down")
    assert root.attributes[schema.OUTCOME] == "cooldown"


async def test_a_failing_endpoint_names_the_command_and_the_trace(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, function_api: FakeFunction
) -> None:
    function_api.then(status=502).then(status=502)
    answer, root = await exchange(fake, spans, "!relationships someone")
    assert answer["content"] == (
        f"The relationships endpoint answered 502. (trace `{trace_id(root)}`)"
    )
    assert root.status.status_code is StatusCode.ERROR
    call = only_child(spans, root, "relationships.call")
    assert len(children(spans, call)) == 2


async def test_a_cold_start_beyond_the_timeout_says_it_timed_out(
    bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter, function_api: FakeFunction
) -> None:
    function_api.then(delay=5)
    answer, root = await exchange(fake, spans, "!relationships someone")
    assert answer["content"].startswith("The relationships endpoint timed out.")
    call = only_child(spans, root, "relationships.call")
    assert call.attributes[schema.API_TIMEOUT_S] == 2.0


async def test_a_declared_flag_gates_the_command(
    bot: ChatOpsBot, settings: Settings, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    write_flag(settings.flags_file, enabled=False)
    await asyncio.sleep(0.3)  # the flag file is re-read on its modification time
    answer, root = await exchange(fake, spans, "!plain")
    assert answer["content"] == "You can't use `!plain`."
    assert root.attributes[schema.OUTCOME] == "denied"
    relationships = bot.get_command("relationships")
    assert relationships is not None and relationships.checks == []
