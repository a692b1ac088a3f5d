"""The ``chatops`` command line: every verb, each failure one clear line and a non-zero exit."""

from __future__ import annotations

import sys

import click

from bot.config import ConfigError, Settings, load_settings

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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="chatops-bot", prog_name="chatops")
def cli() -> None:
    """chatops-bot: an instrumented Discord chat-ops bot."""


def main() -> None:
    """Console-script entry point."""
    try:
        cli.main(prog_name="chatops", standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
