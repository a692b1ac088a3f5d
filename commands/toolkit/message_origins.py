"""Which command's root span sent a message with components, by message id.

``reply``/``respond`` remember the root span behind every message sent with a
view, keyed by message id and bounded; a click on that message (``TracedView``)
links its own root span to it. Kept apart from the views so that the reply
helpers and the views both use it without importing each other.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import discord
from opentelemetry.trace import SpanContext

from telemetry import schema
from telemetry.spans import current_trace

MAX_ORIGINS = 2048


@dataclass(frozen=True)
class Origin:
    """The root span that sent a message with components, and its command."""

    context: SpanContext
    command: str | None


class Origins:
    """Message id -> origin, least recently used evicted past ``limit``."""

    def __init__(self, limit: int = MAX_ORIGINS) -> None:
        self.limit = limit
        self._items: OrderedDict[int, Origin] = OrderedDict()

    def remember(self, message_id: int, origin: Origin) -> None:
        self._items[message_id] = origin
        self._items.move_to_end(message_id)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def get(self, message_id: int) -> Origin | None:
        return self._items.get(message_id)

    def __len__(self) -> int:
        return len(self._items)


origins = Origins()


def remember_origin(message_id: int) -> None:
    """Remember the current root span as the origin of ``message_id`` (no-op outside one)."""
    message_trace = current_trace()
    if message_trace is None:
        return
    command = message_trace.fields.get(schema.COMMAND)
    origins.remember(
        message_id,
        Origin(message_trace.span.get_span_context(), str(command) if command else None),
    )


def origin_of(interaction: discord.Interaction[Any]) -> Origin | None:
    """Where the message ``interaction`` clicked on came from, if still remembered."""
    message = interaction.message
    return origins.get(message.id) if message is not None else None
