"""The ``chatops`` command line: the group and its entry point; each verb group has its module.

The group imports a verb's module only when that verb runs (or when ``--help``
lists them all): ``chatops stats`` should pay for SQLite and a table, not for
discord.py, the OpenTelemetry SDK, aiohttp and the Azure SDK that ``run`` and
``deploy`` need.
"""

from __future__ import annotations

import importlib
import sys

import click

# Verb name -> (module, attribute). ``tests/unit/test_cli_imports.py`` checks that this
# lists every command the verb modules define.
VERBS: dict[str, tuple[str, str]] = {
    "run": ("bot.cli.bot_verbs", "run"),
    "console": ("bot.cli.bot_verbs", "console"),
    "sync-commands": ("bot.cli.bot_verbs", "sync_commands"),
    "stats": ("bot.cli.query_verbs", "stats_command"),
    "trace": ("bot.cli.query_verbs", "trace_command"),
    "traces": ("bot.cli.query_verbs", "traces_command"),
    "marker": ("bot.cli.query_verbs", "marker_command"),
    "honeycomb": ("bot.cli.query_verbs", "honeycomb_group"),
    "ci": ("bot.cli.ci_verbs", "ci"),
    "flags": ("bot.cli.flag_verbs", "flags"),
    "deploy": ("bot.cli.deploy_verbs", "deploy_command"),
    "doctor": ("bot.cli.doctor_verbs", "doctor_command"),
    "builds": ("bot.cli.build_verbs", "builds_command"),
}


class LazyGroup(click.Group):
    """A click group whose verbs are imported by name on first use."""

    def __init__(self, *args: object, lazy: dict[str, tuple[str, str]], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in self.lazy:
            module, attribute = self.lazy[cmd_name]
            command = getattr(importlib.import_module(module), attribute)
            assert isinstance(command, click.Command), f"{module}.{attribute}"
            self.add_command(command, cmd_name)
        return command


@click.group(
    cls=LazyGroup,
    lazy=VERBS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="chatops-bot", prog_name="chatops")
def cli() -> None:
    """chatops-bot: an instrumented Discord chat-ops bot."""


def main() -> None:
    """Console-script entry point."""
    try:
        cli.main(prog_name="chatops", standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
