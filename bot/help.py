"""discord.py's help command, answering through the traced ``reply``.

``verify_checks`` stays on, so ``!help`` lists only the commands the asking user
may run (flag checks included).
"""

from __future__ import annotations

from discord.ext import commands

from telemetry.send import reply


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
