"""One classification of what went wrong: the outcome it means and the reply the user sees.

Messages, slash commands, button presses and Azure operations all fail through
``classify``, so the outcome on the root span, the status and the reply always
agree. The kinds, in priority order (as in python-discord's error handler):
unknown command, user input (bad or missing argument: reply with the usage),
cooldown and concurrency limits (with the time left; no reply at all when the
bot-wide limit has told the user once this window), disabled or denied (a
failed check), errors a command raised on purpose for the user
(``UserFacingError``), and the unexpected: a short apology naming the trace id,
recorded with status ERROR.

Slash commands arrive with the same errors (hybrid commands raise
``ext.commands`` errors, wrapped in ``HybridCommandError`` when discord.py's
app-command layer failed); the few ``app_commands`` errors of their own map to
the same kinds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from discord import app_commands
from discord.ext import commands

from commands.toolkit.trace_refs import trace_target_of
from telemetry.schema import Outcome
from telemetry.spans import current_trace

log = logging.getLogger(__name__)


class UserFacingError(commands.CommandError):
    """A failure whose message is safe and useful to show the user.

    ``outcome`` says whose fault it was: ``ERROR`` for a dependency that failed
    (the reply then names the trace id), ``BAD_INPUT`` for the user's input.
    """

    def __init__(self, message: str, outcome: Outcome = Outcome.ERROR) -> None:
        super().__init__(message)
        self.outcome = outcome


class HiddenCommand(commands.CheckFailure):
    """A check that wants the command to look as if it did not exist."""


class Throttled(commands.CommandOnCooldown):
    """The bot-wide per-user limit (``UserRateLimit``); a cooldown like any other.

    ``notify`` is False when the user was already told in this window: the
    outcome is still ``cooldown``, but no reply is sent, so a flood of commands
    is not answered with a flood of notices.
    """

    def __init__(
        self, cooldown: commands.Cooldown, retry_after: float, *, notify: bool = True
    ) -> None:
        super().__init__(cooldown, retry_after, commands.BucketType.user)
        self.notify = notify


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


def unwrap(error: BaseException) -> BaseException:
    """The error a command raised, out of discord.py's invoke wrappers."""
    if isinstance(error, commands.CommandInvokeError | commands.HybridCommandError):
        error = error.original
    if isinstance(error, app_commands.CommandInvokeError) and error.__cause__ is not None:
        error = error.__cause__
    return error


def classify(
    error: BaseException,
    trace_id: str,
    ctx: commands.Context[Any] | None = None,
    *,
    trace_ref: str | None = None,
) -> Classified:
    """Turn an error into an outcome and the text to reply with.

    ``ctx`` is the command's context when there is one (a button press has
    none); it words the replies that name the command or its usage. ``trace_ref``
    is how the reply names the trace (a link, ``TraceTarget.in_reply``); the bare
    id in backticks by default.
    """
    ref = trace_ref or f"`{trace_id}`"
    error = unwrap(error)
    prefix = ctx.clean_prefix if ctx is not None else "/"
    if isinstance(error, commands.CommandNotFound | HiddenCommand | app_commands.CommandNotFound):
        reply = unknown_command_reply(ctx, ctx.invoked_with or "") if ctx is not None else None
        return Classified(Outcome.UNKNOWN_COMMAND, reply, error)
    if isinstance(error, commands.UserInputError | app_commands.TransformerError):
        how = f"\nUsage: {usage(ctx)}" if ctx is not None else ""
        return Classified(Outcome.BAD_INPUT, f"{_first_line(error)}{how}", error)
    if isinstance(error, Throttled) and not error.notify:
        return Classified(Outcome.COOLDOWN, None, error)
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
        name = ctx.command.qualified_name if ctx is not None and ctx.command else ""
        return Classified(Outcome.DENIED, f"You can't use `{prefix}{name}`.", error)
    if isinstance(error, UserFacingError):
        if error.outcome is Outcome.ERROR:
            return Classified(Outcome.ERROR, f"{error} (trace {ref})", error)
        return Classified(error.outcome, str(error), error)
    return Classified(Outcome.ERROR, f"Something went wrong on my side (trace {ref}).", error)


def record_failure(
    error: BaseException,
    ctx: commands.Context[Any] | None = None,
    *,
    what: str = "command",
    bot: object = None,
) -> Classified:
    """Classify ``error``, record it on the current root span, and log it as its kind deserves.

    A foreseen dependency failure (``UserFacingError`` with outcome ERROR) logs
    one line; an unexpected one logs its traceback; what the user caused logs
    nothing. The caller sends ``Classified.reply`` however its surface answers.
    The reply links the trace when the bot (``bot``, else ``ctx.bot``) has a
    ``trace_target`` with Honeycomb configured.
    """
    message_trace = current_trace()
    trace_id = message_trace.trace_id if message_trace is not None else "-"
    target = trace_target_of(bot if bot is not None else getattr(ctx, "bot", None))
    start_ns = getattr(message_trace.span, "start_time", None) if message_trace else None
    trace_ref = target.in_reply(trace_id, start_s=start_ns / 1e9 if start_ns else None)
    classified = classify(error, trace_id, ctx, trace_ref=trace_ref)
    if message_trace is not None:
        message_trace.record_error(classified.cause, classified.outcome)
    if classified.outcome is Outcome.ERROR:
        if isinstance(classified.cause, UserFacingError):
            log.warning("%s failed: %s", what, classified.cause)
        else:
            log.error("%s failed", what, exc_info=classified.cause)
    return classified


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
