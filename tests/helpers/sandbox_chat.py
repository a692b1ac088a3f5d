"""Talking to the bot through the fake Discord, and waiting for the trace it leaves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot.sandbox import FakeDiscord
from bot.sandbox.interaction_api import FakeInteraction
from tests.helpers.trace_finders import interaction_root, message_root, root_of

EPHEMERAL = 64


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Poll ``predicate`` until true: discord.py's caches offer no event to wait on."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def ask(
    fake: FakeDiscord, content: str, **kwargs: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Send ``content``; assert exactly one reply within 0.3 s; the message and the reply."""
    message = fake.send_message(content, **kwargs)
    replies = await fake.replies_to(int(message["id"]), timeout=0.3)
    assert len(replies) == 1, replies
    return message, replies[0]


async def exchange(
    fake: FakeDiscord,
    spans: InMemorySpanExporter,
    content: str,
    *,
    author: dict[str, Any] | None = None,
    timeout: float = 10.0,
) -> tuple[dict[str, Any], ReadableSpan]:
    """Send ``content``, wait for the reply and the finished root span; return both."""
    answer = await fake.say(content, author=author, timeout=timeout)
    assert answer is not None, f"no reply to {content!r}"
    message_id = answer["message_reference"]["message_id"]
    await until(lambda: message_root(spans, message_id) is not None)
    root = message_root(spans, message_id)
    assert root is not None
    return answer, root


async def settled_root(
    spans: InMemorySpanExporter, message: dict[str, Any], within: float = 8.0
) -> ReadableSpan:
    """``message``'s one root span, once it has ended."""
    await until(lambda: message_root(spans, message["id"]) is not None, within=within)
    return root_of(spans, message)


async def run_slash(
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


def embed_of(answer: dict[str, Any]) -> dict[str, Any]:
    (embed,) = answer["embeds"]
    return dict(embed)
