"""The ``chatops`` command line: the group and its entry point; each verb group has its module."""

from __future__ import annotations

import sys

import click

from bot.cli.bot_verbs import console, run, sync_commands
from bot.cli.ci_verbs import ci
from bot.cli.deploy_verbs import deploy_command
from bot.cli.flag_verbs import flags
from bot.cli.query_verbs import COMMANDS as QUERY_COMMANDS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="chatops-bot", prog_name="chatops")
def cli() -> None:
    """chatops-bot: an instrumented Discord chat-ops bot."""


for _command in (run, console, sync_commands, *QUERY_COMMANDS, ci, flags, deploy_command):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    try:
        cli.main(prog_name="chatops", standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
