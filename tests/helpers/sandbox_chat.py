"""Talking to the bot through the fake Discord, and waiting for the trace it leaves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot.sandbox import FakeDiscord
from bot.sandbox.interaction_api import FakeInteraction
from tests.helpers.captured_spans import EXPORTER
from tests.helpers.trace_finders import interaction_root, message_root, root_of

EPHEMERAL = 64
# Generous: a reply takes milliseconds, but the machine may be busy with other work.
REPLY_TIMEOUT_S = 10.0
# discord.py runs each event listener in a task of this name (``Client._schedule_event``).
_EVENT_TASK_PREFIX = "discord.py: "


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Poll ``predicate`` until true: discord.py's caches offer no event to wait on."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def ask(
    fake: FakeDiscord, content: str, *, timeout: float = REPLY_TIMEOUT_S, **kwargs: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Send ``content``; assert it got exactly one reply; the message and the reply.

    Waits for the reply itself (up to ``timeout``), then for the bot to be done
    with the message (``handled``), so a second reply would already be there.
    """
    message = fake.send_message(content, **kwargs)
    replies = await handled(fake, message, timeout=timeout)
    assert len(replies) == 1, replies
    return message, replies[0]


async def handled(
    fake: FakeDiscord, message: dict[str, Any], *, timeout: float = REPLY_TIMEOUT_S
) -> list[dict[str, Any]]:
    """Every reply to ``message``, which must get one, once the bot has finished with it.

    Waits for the first reply to be posted, then as ``settled`` does. Raises
    ``TimeoutError`` if any of it takes longer than ``timeout``.
    """
    async with asyncio.timeout(timeout):
        first = await fake.first_reply(int(message["id"]), timeout=timeout)
        assert first is not None, f"no reply to {message.get('content')!r} within {timeout} s"
        return await settled(fake, message, timeout=timeout)


async def settled(
    fake: FakeDiscord, message: dict[str, Any], *, timeout: float = REPLY_TIMEOUT_S
) -> list[dict[str, Any]]:
    """Every reply to ``message`` once the in-process bot has finished handling it.

    Finished means two events, no clock: the message's root span ended (the bot
    sends its answer and any error reply inside it), and the discord.py listener
    tasks running then (``on_command_error`` and friends, dispatched while
    handling it) have returned. A second reply would be there by then.
    """
    message_id = int(message["id"])
    async with asyncio.timeout(timeout):
        await until(lambda: message_root(EXPORTER, message_id) is not None, within=timeout)
        await listeners_done()
    return fake.replies_so_far(message_id)


async def listeners_done() -> None:
    """Until every discord.py event task running now (other than the caller) has returned.

    discord.py runs each listener call (``on_message``, ``on_command_error``, ...)
    as its own task named after the event; what they post is posted by then.
    """
    this = asyncio.current_task()
    running = [
        task
        for task in asyncio.all_tasks()
        if task is not this and task.get_name().startswith(_EVENT_TASK_PREFIX)
    ]
    if running:
        await asyncio.wait(running)


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
