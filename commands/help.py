"""discord.py's help command, answering through the traced ``reply``.

``!help roll`` shows the whole signature (``!roll <dice>``) and a description for
each parameter: the one given to ``commands.parameter`` or, for a hybrid command,
the one its slash form shows (``app_commands.describe``), so one sentence serves
both. The listing keeps discord.py's layout but sorts "Other" last by key, not by
the zero-width space discord.py prefixes it with. ``/help`` answers privately.

``verify_checks`` stays on, so ``!help`` lists only the commands the asking user
may run (flag checks included). discord.py applies it to listings only, so
``!help <command>`` for a command the user may not run answers as if it did not
exist: otherwise a hidden beta command would show up by name. Check failures
while filtering are swallowed by discord.py (no reply); each flag is evaluated
once per message (``commands.toolkit.flag_checks``), so a listing leaves one span per flag.

``/help`` is the same help command behind a plain app command (discord.py's
help command cannot be hybrid): it builds the interaction's context and asks
for help exactly as ``!help`` does, so both list the same commands.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from commands.toolkit.replies import reply


class TracedHelpCommand(commands.DefaultHelpCommand):
    def __init__(self) -> None:
        super().__init__(
            verify_checks=True,
            dm_help=False,
            no_category="Other",
            command_attrs={"help": "Show what I can do, or how to use one command."},
        )

    async def command_callback(
        self,
        ctx: commands.Context[Any],
        /,
        *,
        command: str | None = commands.parameter(
            default=None, description="A command (or category) to explain, e.g. roll"
        ),
    ) -> None:
        """discord.py's entry point, redeclared only to describe its parameter."""
        await super().command_callback(ctx, command=command)

    async def send_pages(self) -> None:
        # A slash command's help is for the asker only; a message cannot be private.
        for page in self.paginator.pages:
            await reply(self.context, page, ephemeral=True)

    async def send_error_message(self, error: str, /) -> None:
        await reply(self.context, error, ephemeral=True)

    def get_command_signature(self, command: commands.Command[Any, ..., Any], /) -> str:
        """The full usage line, ``!roll <dice>``, aliases included (discord.py's base form)."""
        return commands.HelpCommand.get_command_signature(self, command)

    def add_command_arguments(self, command: commands.Command[Any, ..., Any], /) -> None:
        arguments = list(command.clean_params.values())
        if not arguments:
            return
        self.paginator.add_line(self.arguments_heading)
        width = max(len(argument.displayed_name or argument.name) for argument in arguments)
        for argument in arguments:
            name = argument.displayed_name or argument.name
            entry = self.shorten_text(
                f"{self.indent * ' '}{name:<{width}} {parameter_description(command, argument)}"
            )
            if argument.displayed_default is not None:
                entry += f" (default: {argument.displayed_default})"
            self.paginator.add_line(entry)

    async def send_bot_help(
        self,
        mapping: Mapping[commands.Cog | None, list[commands.Command[Any, ..., Any]]],
        /,
    ) -> None:
        """discord.py's listing by cog, "Other" last, without an invisible sort character."""

        def category(command: commands.Command[Any, ..., Any]) -> tuple[bool, str]:
            cog = command.cog
            return (cog is None, cog.qualified_name if cog is not None else self.no_category)

        bot = self.context.bot
        if bot.description:
            self.paginator.add_line(bot.description, empty=True)
        filtered = await self.filter_commands(bot.commands, sort=True, key=category)
        max_size = self.get_max_size(filtered)
        for (_, heading), group in itertools.groupby(filtered, key=category):
            listed = sorted(group, key=lambda c: c.name)
            self.add_indented_commands(listed, heading=f"{heading}:", max_size=max_size)
        note = self.get_ending_note()
        if note:
            self.paginator.add_line()
            self.paginator.add_line(note)
        await self.send_pages()

    async def send_command_help(self, command: commands.Command[Any, ..., Any], /) -> None:
        if await self._may_run(command):
            await super().send_command_help(command)

    async def send_group_help(self, group: commands.Group[Any, ..., Any], /) -> None:
        if await self._may_run(group):
            await super().send_group_help(group)

    async def _may_run(self, command: commands.Command[Any, ..., Any]) -> bool:
        """Whether the asker may run ``command``; if not, reply as for an unknown name."""
        if not self.verify_checks:
            return True
        try:
            if await command.can_run(self.context):
                return True
        except commands.CommandError:
            pass
        await self.send_error_message(self.command_not_found(command.qualified_name))
        return False


def parameter_description(
    command: commands.Command[Any, ..., Any], parameter: commands.Parameter
) -> str:
    """The parameter's own description, else its slash option's; empty if it has neither."""
    if parameter.description:
        return parameter.description
    converter = parameter.converter
    if isinstance(converter, type) and issubclass(converter, commands.FlagConverter):
        # ``--tail N`` and the like: each flag with its own description.
        return "; ".join(
            f"{converter.__commands_flag_prefix__}{flag.name}: {flag.description}"
            for flag in converter.get_flags().values()
            if flag.description
        )
    app_command = getattr(command, "app_command", None)
    if isinstance(app_command, app_commands.Command):
        option = app_command.get_parameter(parameter.name)
        # discord.py fills an undescribed option with "…" (Discord requires some text).
        if option is not None and option.description not in ("", "\u2026"):
            return str(option.description)
    return ""


@app_commands.command(name="help", description="Show what I can do, or how to use one command.")
@app_commands.describe(command="A command to explain, e.g. roll")
async def slash_help(interaction: discord.Interaction[Any], command: str | None = None) -> None:
    """``/help [command]``: discord.py's help command, answered through the interaction."""
    ctx: commands.Context[Any] = await commands.Context.from_interaction(interaction)
    if command:
        await ctx.send_help(command.strip().removeprefix("/"))
    else:
        await ctx.send_help()
