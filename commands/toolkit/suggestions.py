""" "Did you mean `!roll`?": the closest commands to an unknown name, among those the asker may run.

``difflib`` ranks the names and aliases of the commands ``!help`` would list
(not hidden); only the few close ones are then checked with ``can_run``, so a
flag-hidden command (``!beta``) is never suggested to someone it is hidden from,
and a typo costs at most a few flag evaluations, not one per command.
"""

from __future__ import annotations

import difflib
from typing import Any

from discord.ext import commands

from commands.toolkit.failures import unknown_command_reply

MAX_SUGGESTIONS = 3
# difflib's ratio: 0.6 finds "rol" -> "roll" and "pnig" -> "ping", not "x" -> "aci".
CUTOFF = 0.6


async def closest_commands(ctx: commands.Context[Any], name: str) -> list[str]:
    """Up to three command names (or aliases) close to ``name`` that the asker may run."""
    by_name: dict[str, commands.Command[Any, ..., Any]] = {}
    for command in ctx.bot.commands:
        if not command.hidden:
            for alias in (command.name, *command.aliases):
                by_name.setdefault(alias, command)
    found: list[str] = []
    for candidate in difflib.get_close_matches(name.lower(), by_name, n=8, cutoff=CUTOFF):
        try:
            allowed = await by_name[candidate].can_run(ctx)
        except commands.CommandError:
            allowed = False
        if allowed:
            found.append(candidate)
        if len(found) == MAX_SUGGESTIONS:
            break
    return found


async def unknown_command_answer(ctx: commands.Context[Any], name: str) -> str:
    """The reply to an unknown (or hidden) command: the closest ones, else a pointer to help."""
    close = await closest_commands(ctx, name)
    if not close:
        return unknown_command_reply(ctx, name)
    prefix = ctx.clean_prefix
    names = " or ".join(f"`{prefix}{candidate}`" for candidate in close)
    return f"I don't know `{prefix}{name}`; did you mean {names}?"
