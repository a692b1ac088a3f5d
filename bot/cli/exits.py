"""How a ``chatops`` verb fails: one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import click

from bot.config import ConfigError, Settings, check_bot_requirements, load_settings

EXIT_USAGE = 2


class Failure(click.ClickException):
    """A failure the user can act on: printed as one line, exit code 2."""

    exit_code = EXIT_USAGE

    def show(self, file: object = None) -> None:
        click.echo(f"chatops: {self.format_message()}", err=True)


def settings() -> Settings:
    """Load ``Settings`` for a CLI verb, turning a bad value into one line and exit 2."""
    try:
        return load_settings()
    except ConfigError as exc:
        raise Failure(str(exc)) from None


def check_bot_start(config: Settings) -> None:
    """Before connecting: what the bot needs to start, and ``COMMANDS_FILE``; one line, exit 2."""
    from commands.http_backed.commands_file import CommandsFileError, load_commands

    try:
        check_bot_requirements(config)
        load_commands(config.commands_file)
    except (ConfigError, CommandsFileError) as exc:
        raise Failure(str(exc)) from None
