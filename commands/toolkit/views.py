"""Buttons and selects: each click is its own trace, linked to the command that showed it.

A click can come minutes after the command, so it must not join that trace (the
command's root span has long ended, and its duration would lie). Instead the
click gets a root span of its own with an OTel span link to the command's root,
which backends show as "continues trace …". ``reply``/``respond`` remember the
root span behind every message sent with a view (``message_origins``), so the
link survives without holding on to the view.

Use ``TracedView`` as the base of a view (an ACI stop/restart confirmation, for
instance): every item callback, its checks and its error handling run inside
the click's root span, with the same outcomes as commands and an ephemeral
reply naming the trace id when something breaks.
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from opentelemetry.trace import Link

from commands.toolkit.failures import record_failure
from commands.toolkit.interaction_state import interaction_attributes, interaction_fields, tracking
from commands.toolkit.message_origins import origin_of
from commands.toolkit.replies import respond
from telemetry import schema
from telemetry.spans import root_span

log = logging.getLogger(__name__)


def custom_id_of(interaction: discord.Interaction[Any]) -> str:
    data: Any = interaction.data or {}
    custom_id = data.get("custom_id") if isinstance(data, dict) else None
    return str(custom_id or "?")


class TracedView(discord.ui.View):
    """A view whose every interaction is a root span linked to the sending command's trace.

    discord.py runs an item's checks, callback and ``on_error`` in one task per
    click (``View._scheduled_task``); wrapping that task is the only place that
    covers all three, so this overrides it (private, stable since discord.py 2.0).
    """

    async def _scheduled_task(
        self, item: discord.ui.Item[Any], interaction: discord.Interaction[Any]
    ) -> None:
        origin = origin_of(interaction)
        custom_id = custom_id_of(interaction)
        attributes = interaction_attributes(interaction)
        attributes[schema.COMPONENT_ID] = custom_id
        fields = interaction_fields(interaction)
        if origin is not None and origin.command:
            fields[schema.COMMAND] = origin.command
        links = [Link(origin.context)] if origin is not None else []
        with (
            root_span(
                schema.ROOT_SPAN_COMPONENT_PREFIX + custom_id, attributes, fields, links=links
            ),
            tracking(interaction),
        ):
            await super()._scheduled_task(item, interaction)  # type: ignore[misc]

    async def on_error(
        self, interaction: discord.Interaction[Any], error: Exception, item: discord.ui.Item[Any], /
    ) -> None:
        """Record the failure on the click's root span and tell the clicker, privately."""
        classified = record_failure(
            error, what=f"view item {custom_id_of(interaction)}", bot=interaction.client
        )
        try:
            await respond(interaction, classified.reply or "", ephemeral=True)
        except discord.HTTPException as exc:
            log.warning("could not send the error reply: %s", exc)
