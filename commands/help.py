"""discord.py's help command, answering through the traced ``reply``.

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

    async def send_pages(self) -> None:
        for page in self.paginator.pages:
            await reply(self.context, page)

    async def send_error_message(self, error: str, /) -> None:
        await reply(self.context, error)

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


@app_commands.command(name="help", description="Show what I can do, or how to use one command.")
@app_commands.describe(command="A command to explain, e.g. roll")
async def slash_help(interaction: discord.Interaction[Any], command: str | None = None) -> None:
    """``/help [command]``: discord.py's help command, answered through the interaction."""
    ctx: commands.Context[Any] = await commands.Context.from_interaction(interaction)
    if command:
        await ctx.send_help(command.strip().removeprefix("/"))
    else:
        await ctx.send_help()
