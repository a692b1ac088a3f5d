"""``!trace <id-prefix>``: a stored trace summarised in an embed, through the real bot."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Status, StatusCode, Tracer, set_span_in_context

from bot.client import ChatOpsBot
from bot.config import Settings
from bot.harness import connected_bot
from bot.sandbox import FakeDiscord
from telemetry import schema
from telemetry.store import SqliteSpanExporter
from tests.helpers.flag_rules import boolean_flag, users, write_flags
from tests.helpers.sandbox_chat import embed_of, exchange

FAILED = 0xABCDEF01_00000000_00000000_00000001
TWIN_A = 0x12345678_00000000_00000000_0000000A
TWIN_B = 0x12345678_00000000_00000000_0000000B


class QueuedIds(IdGenerator):
    """Trace ids from a list (so two traces can share a prefix); span ids counting up."""

    def __init__(self, trace_ids: list[int]) -> None:
        self.trace_ids = list(trace_ids)
        self.span = 0

    def generate_trace_id(self) -> int:
        return self.trace_ids.pop(0)

    def generate_span_id(self) -> int:
        self.span += 1
        return self.span


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    """A span store holding a failed restart, and two traces whose ids share 8 digits."""
    path = tmp_path / "spans.db"
    exporter = SqliteSpanExporter(path, max_age=timedelta(days=7), max_bytes=64 * 1024 * 1024)
    provider = TracerProvider(id_generator=QueuedIds([FAILED, TWIN_A, TWIN_B]))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    write_failed_restart(tracer)
    for _ in range(2):
        with tracer.start_as_current_span("command ping", attributes={schema.OUTCOME: "ok"}):
            pass
    provider.shutdown()
    yield path


def write_failed_restart(tracer: Tracer) -> None:
    t0 = time.time_ns() - 60_000_000_000  # recent: older spans are retention's to delete
    ms = 1_000_000
    root = tracer.start_span(
        "command aci restart",
        start_time=t0,
        attributes={
            schema.COMMAND: "aci restart",
            schema.OUTCOME: "error",
            schema.AUTHOR_NAME: "olivia [x](https://evil.example) @everyone",
            schema.ERROR_MESSAGE: "Azure answered 409 Conflict: busy",
        },
    )
    root.set_status(Status(StatusCode.ERROR, "AzureError"))
    inside = set_span_in_context(root)
    for name, start, took, failed in [
        ("azure.containerinstance.get", 1, 40, False),
        ("azure.containerinstance.restart", 45, 900, True),
        ("discord.send", 950, 12, False),
    ]:
        child = tracer.start_span(name, context=inside, start_time=t0 + start * ms)
        if failed:
            child.record_exception(RuntimeError("Conflict: the group is busy"))
            child.set_status(Status(StatusCode.ERROR, "Conflict"))
        child.end(end_time=t0 + (start + took) * ms)
    root.end(end_time=t0 + 1000 * ms)


@pytest.fixture
def operator(fake: FakeDiscord) -> dict[str, Any]:
    return fake.add_user("olivia")


@pytest.fixture
async def trace_bot(
    settings: Settings, fake: FakeDiscord, store: Path, operator: dict[str, Any],
    spans: InMemorySpanExporter,
) -> AsyncIterator[ChatOpsBot]:  # fmt: skip
    write_flags(settings.flags_file, {"aci-operator": boolean_flag(users(operator["id"]))})
    configured = settings.model_copy(
        update={"span_store": str(store), "honeycomb_team": "acme", "honeycomb_environment": "prod"}
    )
    async with connected_bot(configured, fake, guild_ready_timeout=0.05) as bot:
        yield bot


def field(embed: dict[str, Any], name: str) -> str:
    (value,) = [f["value"] for f in embed["fields"] if f["name"] == name]
    return str(value)


async def test_trace_by_prefix_summarises_outcome_slowest_spans_and_errors_with_a_link(
    trace_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any],
    spans: InMemorySpanExporter,
) -> None:  # fmt: skip
    full = format(FAILED, "032x")
    answer, root = await exchange(fake, spans, f"!trace {full[:10]}", author=operator)
    embed = embed_of(answer)
    assert embed["title"] == f"trace {full}"
    assert embed["url"].startswith("https://ui.honeycomb.io/acme/environments/prod/datasets/")
    assert f"trace_id={full}" in embed["url"]
    assert "outcome **error** in 1000.0 ms" in embed["description"]
    slowest = field(embed, "slowest spans").splitlines()
    assert slowest[0] == "`azure.containerinstance.restart` 900.0 ms"
    assert len(slowest) == 3
    errors = field(embed, "errors")
    assert "`command aci restart`: `Azure answered 409 Conflict: busy`" in errors
    assert "`azure.containerinstance.restart`: `Conflict: the group is busy`" in errors
    # What a user once typed stays inert: no masked link, no ping.
    assert "`olivia [x](https://evil.example) @everyone`" in field(embed, "author")
    assert not fake.would_ping(answer)
    assert root.name == "command trace" and root.attributes[schema.OUTCOME] == "ok"
    assert root.attributes[schema.TRACE_LOOKUP] == full


@pytest.mark.parametrize(
    ("argument", "reply"),
    [
        ("12345678", "`12345678` matches more than one trace: give more digits."),
        ("ffffffff00", "No trace starting with `ffffffff00` in the span store"),
        ("nothex!!", "`nothex!!` is not a trace id: give its first 8 to 32 hex digits."),
        ("abc", "`abc` is not a trace id"),
    ],
)
async def test_ambiguous_unknown_or_malformed_prefixes_get_a_clear_reply(
    trace_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any],
    spans: InMemorySpanExporter, argument: str, reply: str,
) -> None:  # fmt: skip
    answer, root = await exchange(fake, spans, f"!trace {argument}", author=operator)
    assert answer["content"].startswith(reply)
    assert root.attributes[schema.OUTCOME] == "bad_input"


async def test_trace_is_for_operators_only(
    trace_bot: ChatOpsBot, fake: FakeDiscord, spans: InMemorySpanExporter
) -> None:
    full = format(FAILED, "032x")
    answer, root = await exchange(fake, spans, f"!trace {full}", author=fake.add_user("mallory"))
    assert answer["content"] == "You can't use `!trace`."
    assert root.attributes[schema.OUTCOME] == "denied"


async def test_without_a_span_store_trace_says_so(
    settings: Settings, fake: FakeDiscord, operator: dict[str, Any], spans: InMemorySpanExporter
) -> None:
    write_flags(settings.flags_file, {"aci-operator": boolean_flag(users(operator["id"]))})
    async with connected_bot(settings, fake, guild_ready_timeout=0.05):
        answer, _ = await exchange(fake, spans, "!trace abcdef0123", author=operator)
        assert answer["content"].startswith("The span store is off here")
