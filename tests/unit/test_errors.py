"""The one mapping from command errors to outcome and reply."""

from __future__ import annotations

from typing import Any

import discord
import pytest
from discord.ext import commands

from commands.toolkit.failures import HiddenCommand, UserFacingError, classify
from telemetry.schema import Outcome


@commands.command()
async def greet(ctx: commands.Context[Any], name: str, times: int = 1) -> None:
    """A command to classify errors against."""


class FakeCtx:
    """The few attributes ``classify`` reads from a context."""

    clean_prefix = "!"
    invoked_with = "greet"
    command = greet


def _classify(error: BaseException) -> Any:
    return classify(error, "abc123", FakeCtx())  # type: ignore[arg-type]


def test_unknown_command_names_the_command_and_points_to_help() -> None:
    result = _classify(commands.CommandNotFound("nope"))
    assert result.outcome is Outcome.UNKNOWN_COMMAND
    assert "`!greet`" in result.reply and "!help" in result.reply


def test_hidden_command_looks_unknown() -> None:
    assert _classify(HiddenCommand()).outcome is Outcome.UNKNOWN_COMMAND


def test_missing_argument_replies_with_usage() -> None:
    param = greet.clean_params["name"]
    result = _classify(commands.MissingRequiredArgument(param))
    assert result.outcome is Outcome.BAD_INPUT
    assert "Usage: `!greet <name> [times=1]`" in result.reply


def test_bad_argument_is_bad_input() -> None:
    result = _classify(commands.BadArgument('Converting to "int" failed for parameter "times".'))
    assert result.outcome is Outcome.BAD_INPUT
    assert result.reply.startswith('Converting to "int" failed')


def test_check_failure_is_denied_and_names_the_command() -> None:
    result = _classify(commands.CheckFailure())
    assert result.outcome is Outcome.DENIED
    assert "`!greet`" in result.reply


def test_cooldown_says_how_long_to_wait() -> None:
    cooldown = commands.Cooldown(1, 5)
    result = _classify(commands.CommandOnCooldown(cooldown, 3.25, commands.BucketType.user))
    assert result.outcome is Outcome.COOLDOWN
    assert "3.2s" in result.reply or "3.3s" in result.reply


def test_unexpected_error_names_the_trace_and_hides_details() -> None:
    original = RuntimeError("database password is hunter2")
    result = _classify(commands.CommandInvokeError(original))
    assert result.outcome is Outcome.ERROR
    assert "abc123" in result.reply
    assert "hunter2" not in result.reply
    assert result.cause is original


def test_user_facing_error_is_shown_with_trace_id() -> None:
    result = _classify(commands.CommandInvokeError(UserFacingError("The cat API timed out.")))
    assert result.outcome is Outcome.ERROR
    assert result.reply == "The cat API timed out. (trace `abc123`)"


@pytest.mark.parametrize("outcome", [Outcome.BAD_INPUT, Outcome.DENIED])
def test_user_facing_error_can_blame_the_input(outcome: Outcome) -> None:
    result = _classify(UserFacingError("No such group.", outcome))
    assert result.outcome is outcome
    assert result.reply == "No such group."


def test_discord_http_errors_are_errors() -> None:
    class Response:
        status = 503
        reason = "Service Unavailable"

    error = discord.DiscordServerError(Response(), "down")  # type: ignore[arg-type]
    assert _classify(commands.CommandInvokeError(error)).outcome is Outcome.ERROR
