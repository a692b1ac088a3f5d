"""The private internals the bot relies on still have the shape it was written against.

pyproject bounds discord.py to the tested minor (``>=2.7,<2.8``) because the bot overrides
private methods and filters private loggers; when a lock refresh or a range change brings a
release where one of these moved, this file fails with the name of what changed, instead of
the slash commands or buttons silently losing their traces.
"""

from __future__ import annotations

import importlib
import inspect
import logging

import discord
import pytest
from discord import app_commands
from discord.ext.commands import hybrid
from packaging.version import Version

from bot.command_tree import ChatOpsTree
from commands.toolkit.views import TracedView
from telemetry.drops import EXPORTER_LOGGER, QUEUE_LOGGER


def parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_discord_py_is_the_tested_minor_version() -> None:
    assert Version(discord.__version__).release[:2] == (2, 7), (
        f"discord.py {discord.__version__}: re-check the overrides below, then widen the bound"
    )


def test_command_tree_still_hands_each_interaction_to_call() -> None:
    """ChatOpsTree._call wraps every slash command and autocomplete in its root span."""
    base = app_commands.CommandTree._call
    assert inspect.iscoroutinefunction(base)
    assert parameters(base) == ["self", "interaction"]
    assert "self._call(" in inspect.getsource(app_commands.CommandTree._from_interaction)
    assert ChatOpsTree._call is not base  # the override is in place
    options = app_commands.CommandTree._get_app_command_options
    assert parameters(options) == ["self", "data"]


def test_view_still_runs_each_click_in_scheduled_task() -> None:
    """TracedView._scheduled_task wraps a click's checks, callback and on_error in one span."""
    base = discord.ui.View._scheduled_task
    assert inspect.iscoroutinefunction(base)
    assert parameters(base) == ["self", "item", "interaction"]
    assert "self._scheduled_task(" in inspect.getsource(discord.ui.View._dispatch_item)
    assert TracedView._scheduled_task is not base


def test_hybrid_commands_still_keep_their_context_on_the_interaction_baton() -> None:
    """bot/command_tree.py reads ``interaction._baton`` to report a hybrid command's error."""
    assert "interaction._baton" in inspect.getsource(hybrid)


def test_discord_py_still_words_the_voice_warning_the_log_filter_drops() -> None:
    assert "voice will NOT be supported" in inspect.getsource(discord.client)


@pytest.mark.parametrize(
    ("logger", "message"),
    [(QUEUE_LOGGER, "Queue full, dropping"), (EXPORTER_LOGGER, "")],
    ids=["batch-queue", "otlp-exporter"],
)
def test_the_sdk_still_logs_span_loss_where_the_summary_filter_listens(
    logger: str, message: str
) -> None:
    """telemetry/drops.py filters these loggers by name; a renamed module would flood the log."""
    module = importlib.import_module(logger)
    source = inspect.getsource(module)
    assert "logging.getLogger(__name__)" in source, f"{logger} no longer logs under its own name"
    assert message in source
    assert isinstance(logging.getLogger(logger), logging.Logger)
