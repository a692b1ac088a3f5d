"""Errors a command or check raises on purpose, each carrying the outcome it means.

They live here, beside the outcome enum, so commands and flag checks can raise
them without depending on the bot; ``bot/errors.py`` turns them into replies.
"""

from __future__ import annotations

from discord.ext import commands

from telemetry.schema import Outcome


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
