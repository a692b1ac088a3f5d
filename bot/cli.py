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


def check_commands_file(config: Settings) -> None:
    """Validate ``COMMANDS_FILE`` before connecting: a bad file is one line and exit 2."""
    from commands.http_config import CommandsFileError, load_commands

    try:
        load_commands(config.commands_file)
    except CommandsFileError as exc:
        raise Failure(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="chatops-bot", prog_name="chatops")
def cli() -> None:
    """chatops-bot: an instrumented Discord chat-ops bot."""


def _register() -> None:
    from bot.cli_ci import ci
    from bot.cli_query import COMMANDS as QUERY_COMMANDS

    for command in (*QUERY_COMMANDS, ci):
        cli.add_command(command)


_register()


def main() -> None:
    """Console-script entry point."""
    try:
        cli.main(prog_name="chatops", standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)


@cli.command()
def run() -> None:
    """Connect to Discord with DISCORD_TOKEN and serve until SIGTERM."""
    import asyncio

    import discord

    from bot.logs import configure_logging
    from bot.runner import serve, start_tracing
    from commands.http_config import CommandsFileError
    from telemetry.setup import shutdown

    config = settings()
    if config.discord_token is None or not config.discord_token.get_secret_value().strip():
        raise Failure("DISCORD_TOKEN is not set")
    check_commands_file(config)
    configure_logging()
    provider = start_tracing(config)
    try:
        asyncio.run(serve(config, config.discord_token.get_secret_value().strip()))
    except discord.LoginFailure:
        raise Failure("Discord rejected DISCORD_TOKEN (401 Unauthorized)") from None
    except discord.PrivilegedIntentsRequired:
        raise Failure(
            "the message content intent is not enabled for this bot in the developer portal"
        ) from None
    except CommandsFileError as exc:
        raise Failure(str(exc)) from None
    except (OSError, discord.DiscordException) as exc:
        raise Failure(f"cannot reach Discord: {exc}") from None
    finally:
        shutdown(provider)


@cli.command()
@click.option(
    "-c",
    "--command",
    "lines",
    multiple=True,
    metavar="TEXT",
    help="Send TEXT as a message, print the reply and trace, and exit (repeatable).",
)
def console(lines: tuple[str, ...]) -> None:
    """Run the real bot against a local fake Discord and chat with it."""
    import asyncio
    import logging

    from rich.console import Console

    from bot.config import telemetry_config
    from bot.console import run_console
    from bot.logs import configure_logging
    from commands.http_config import CommandsFileError
    from telemetry.recent import RecentTraces
    from telemetry.setup import build_provider, install, shutdown

    config = settings()
    check_commands_file(config)
    configure_logging(logging.WARNING)
    recent = RecentTraces()
    provider = build_provider(telemetry_config(config), processors=[recent])
    install(provider)
    try:
        asyncio.run(
            run_console(
                config,
                lines,
                recent,
                Console(highlight=False, width=None if sys.stdout.isatty() else 120),
            )
        )
    except CommandsFileError as exc:
        raise Failure(str(exc)) from None
    except (OSError, TimeoutError, RuntimeError) as exc:
        raise Failure(f"the sandbox could not start: {exc}") from None
    finally:
        shutdown(provider)


@cli.command("sync-commands")
@click.option("--guild", "guild_id", type=int, default=None, help="Register in this guild only.")
def sync_commands(guild_id: int | None) -> None:
    """Register the slash commands with Discord (globally, or in one guild at once)."""
    import asyncio

    import discord

    from bot.sync import sync_commands as sync
    from commands.http_config import CommandsFileError

    config = settings()
    if config.discord_token is None or not config.discord_token.get_secret_value().strip():
        raise Failure("DISCORD_TOKEN is not set")
    check_commands_file(config)
    try:
        synced = asyncio.run(
            sync(config, config.discord_token.get_secret_value().strip(), guild_id)
        )
    except discord.LoginFailure:
        raise Failure("Discord rejected DISCORD_TOKEN (401 Unauthorized)") from None
    except discord.Forbidden:
        raise Failure(f"no applications.commands access in guild {guild_id}") from None
    except CommandsFileError as exc:
        raise Failure(str(exc)) from None
    except (OSError, discord.DiscordException) as exc:
        raise Failure(f"cannot register the commands: {exc}") from None
    where = f"in guild {guild_id}" if guild_id is not None else "globally"
    names = ", ".join(f"/{command.name}" for command in synced)
    click.echo(f"registered {len(synced)} command(s) {where}: {names}")


def _register_verbs() -> None:
    """Verb groups that live in their own modules (imported last: they import this one)."""
    from bot.cli_deploy import deploy_command
    from bot.cli_flags import flags

    cli.add_command(flags)
    cli.add_command(deploy_command)


_register_verbs()
