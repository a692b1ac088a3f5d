"""Helpers for slash-command tests: the interaction's root span and what it answered."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot.sandbox import FakeDiscord
from bot.sandbox.interaction_api import FakeInteraction
from telemetry import schema
from tests.conftest import until

EPHEMERAL = 64


def interaction_root(spans: InMemorySpanExporter, interaction_id: int) -> ReadableSpan | None:
    for span in spans.get_finished_spans():
        if span.parent is None and span.attributes.get(schema.INTERACTION_ID) == str(
            interaction_id
        ):
            return span
    return None


async def run(
    fake: FakeDiscord,
    spans: InMemorySpanExporter,
    line: str,
    *,
    author: dict[str, Any] | None = None,
    timeout: float = 10.0,
) -> tuple[dict[str, Any], ReadableSpan, FakeInteraction]:
    """Send ``line`` as a slash command; the answer, the finished root span, the interaction."""
    interaction = fake.send_command(line, author=author)
    answer = await interaction.wait(timeout)
    assert answer is not None, f"no answer to {line!r}"
    await until(lambda: interaction_root(spans, interaction.id) is not None, within=timeout)
    root = interaction_root(spans, interaction.id)
    assert root is not None
    return answer, root, interaction


def is_ephemeral(message: dict[str, Any]) -> bool:
    return bool(int(message.get("flags") or 0) & EPHEMERAL)
