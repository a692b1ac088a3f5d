"""One mapping from what went wrong to the outcome and the reply.

The kinds, in priority order (as in python-discord's error handler):
unknown command, user input (bad or missing argument: reply with the usage),
check failure (denied), cooldown and concurrency limits (with the time left),
errors a command raised on purpose for the user (``UserFacingError``), and the
unexpected: a short apology naming the trace id, recorded with status ERROR.

Slash commands arrive with the same errors (hybrid commands raise
``ext.commands`` errors, wrapped in ``HybridCommandError`` when discord.py's
app-command layer failed); the few ``app_commands`` errors of their own map to
the same kinds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from discord import app_commands
from discord.ext import commands

from telemetry.errors import HiddenCommand, UserFacingError
from telemetry.schema import Outcome


@dataclass(frozen=True)
class Classified:
    outcome: Outcome
    reply: str | None
    cause: BaseException


def usage(ctx: commands.Context[Any]) -> str:
    command = ctx.command
    if command is None:
        return ""
    signature = f" {command.signature}" if command.signature else ""
    return f"`{ctx.clean_prefix}{command.qualified_name}{signature}`"


def unknown_command_reply(ctx: commands.Context[Any], name: str) -> str:
    return f"I don't know `{ctx.clean_prefix}{name}`. `{ctx.clean_prefix}help` lists what I can do."


def classify(ctx: commands.Context[Any], error: BaseException, trace_id: str) -> Classified:
    """Turn a command error into an outcome and the text to reply with."""
    if isinstance(error, commands.CommandInvokeError | commands.HybridCommandError):
        error = error.original
    if isinstance(error, app_commands.CommandInvokeError) and error.__cause__ is not None:
        error = error.__cause__
    if isinstance(error, commands.CommandNotFound | HiddenCommand | app_commands.CommandNotFound):
        name = ctx.invoked_with or ""
        return Classified(Outcome.UNKNOWN_COMMAND, unknown_command_reply(ctx, name), error)
    if isinstance(error, commands.UserInputError | app_commands.TransformerError):
        return Classified(Outcome.BAD_INPUT, f"{_first_line(error)}\nUsage: {usage(ctx)}", error)
    if isinstance(error, commands.CommandOnCooldown | app_commands.CommandOnCooldown):
        return Classified(
            Outcome.COOLDOWN, f"Slow down: try again in {error.retry_after:.1f}s.", error
        )
    if isinstance(error, commands.MaxConcurrencyReached):
        return Classified(
            Outcome.COOLDOWN, "I'm busy with that right now; try again in a moment.", error
        )
    if isinstance(error, commands.DisabledCommand):
        return Classified(Outcome.DENIED, "That command is disabled.", error)
    if isinstance(error, commands.CheckFailure | app_commands.CheckFailure):
        name = ctx.command.qualified_name if ctx.command else ""
        return Classified(Outcome.DENIED, f"You can't use `{ctx.clean_prefix}{name}`.", error)
    if isinstance(error, UserFacingError):
        if error.outcome is Outcome.ERROR:
            return Classified(Outcome.ERROR, f"{error} (trace `{trace_id}`)", error)
        return Classified(error.outcome, str(error), error)
    return Classified(
        Outcome.ERROR, f"Something went wrong on my side (trace `{trace_id}`).", error
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
