"""Where an interaction enters: the command tree that wraps each one in a root span.

discord.py hands every application-command and autocomplete interaction to
``CommandTree._call`` in a task of its own (``_from_interaction``), and
``_call`` does everything else: it resolves the command, runs the checks,
converts the options, invokes the callback and calls ``on_error``. Overriding
``_call`` is therefore the one place where a root span wraps the whole handling,
from before the command is resolved to after the error reply; ``on_interaction``
runs in a separate task (too late and unordered), and ``interaction_check`` runs
before resolution but cannot wrap what follows it.

Hybrid commands report their errors not by raising but through
``Bot.dispatch("command_error")``, which would start yet another task;
``ChatOpsBot.dispatch`` hands them to ``capture_error`` instead, and they are
reported here, inside the span, through the same ``report_error`` as messages.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from commands.toolkit.interaction_state import (
    current_interaction,
    defer_after,
    interaction_attributes,
    interaction_fields,
    options_text,
    tracking,
)
from commands.toolkit.limits import check_argument_length
from commands.toolkit.readable_input import check_readable, option_values
from commands.toolkit.replies import respond
from telemetry import schema
from telemetry.schema import Outcome
from telemetry.spans import MessageTrace, root_span

if TYPE_CHECKING:
    from bot.client import ChatOpsBot

log = logging.getLogger(__name__)

AnyAppCommand = app_commands.Command[Any, ..., Any]


def capture_error(ctx: commands.Context[Any], error: BaseException) -> bool:
    """Keep a hybrid command's error for the interaction being handled; False if none."""
    state = current_interaction()
    if state is None or ctx.interaction is not state.interaction:
        return False
    state.errors.append(error)
    return True


def wrapped_command(command: AnyAppCommand) -> commands.Command[Any, ..., Any] | None:
    """The ``ext.commands`` command behind a hybrid app command (limits and extras live there)."""
    wrapped = getattr(command, "wrapped", None)
    return wrapped if isinstance(wrapped, commands.Command) else None


class ChatOpsTree(app_commands.CommandTree["ChatOpsBot"]):
    """The bot's command tree: one traced path per interaction, the same limits as messages."""

    async def _call(self, interaction: discord.Interaction[ChatOpsBot]) -> None:
        autocomplete = interaction.type is discord.InteractionType.autocomplete
        with (
            root_span(
                schema.ROOT_SPAN_INTERACTION,
                interaction_attributes(interaction),
                interaction_fields(interaction),
            ) as trace,
            tracking(interaction) as state,
        ):
            data: Any = interaction.data or {}
            if data.get("type", 1) != 1:  # context menus: none yet, discord.py answers
                await super()._call(interaction)
                return
            try:
                command, options = self._get_app_command_options(data)
            except app_commands.CommandNotFound:
                await self._unknown(interaction, trace, str(data.get("name", "?")))
                return
            trace.command_resolved(command.qualified_name, options_text(options))
            if autocomplete:
                trace.span.update_name(
                    schema.ROOT_SPAN_AUTOCOMPLETE_PREFIX + command.qualified_name
                )
                await super()._call(interaction)
                trace.set_outcome(Outcome.AUTOCOMPLETE)  # not a command run (stats, queries)
                return
            await self._invoke(interaction, command, options)
            for error in state.errors[:1]:
                await self.client.report_error(await self._context(interaction), error)

    async def _invoke(
        self,
        interaction: discord.Interaction[ChatOpsBot],
        command: AnyAppCommand,
        options: list[Any],
    ) -> None:
        """Run the command under the bot-wide limits, deferring if it is slow to answer."""
        bot = self.client
        state = current_interaction()
        assert state is not None
        wrapped = wrapped_command(command)
        try:
            check_argument_length(options_text(options), bot.settings.max_argument_chars)
            check_readable(*option_values(options))
            async with (
                bot.expensive.slot(wrapped) if wrapped is not None else contextlib.nullcontext(),
                defer_after(interaction, bot.settings.slash_defer_after_s),
            ):
                await super()._call(interaction)
        except (commands.CommandError, app_commands.AppCommandError) as exc:
            state.errors.append(exc)

    async def _context(self, interaction: discord.Interaction[ChatOpsBot]) -> commands.Context[Any]:
        baton = getattr(interaction, "_baton", None)
        if isinstance(baton, commands.Context):
            return baton
        return await self.client.get_context(interaction)

    async def _unknown(
        self, interaction: discord.Interaction[ChatOpsBot], trace: MessageTrace, name: str
    ) -> None:
        """A command Discord still offers but this bot no longer has (stale registration)."""
        trace.set_outcome(Outcome.UNKNOWN_COMMAND)
        if interaction.type is discord.InteractionType.autocomplete:
            return
        await respond(
            interaction,
            f"I don't know `/{name}`. `/help` lists what I can do.",
            ephemeral=True,
        )

    async def on_error(
        self, interaction: discord.Interaction[ChatOpsBot], error: app_commands.AppCommandError, /
    ) -> None:
        """Errors of plain (non-hybrid) app commands: reported inside the span like the rest."""
        state = current_interaction()
        if state is not None and state.interaction is interaction:
            state.errors.append(error)
            return
        await super().on_error(interaction, error)
