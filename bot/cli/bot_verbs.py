"""``chatops run|console|sync-commands``: the verbs that start the bot itself."""

from __future__ import annotations

import sys

import click

from bot.cli.exits import Failure, check_bot_start, settings


@click.command()
def run() -> None:
    """Connect to Discord with DISCORD_TOKEN and serve until SIGTERM."""
    import asyncio

    import discord

    from bot.config import ConfigError
    from bot.logs import configure_logging
    from bot.runner import ShutdownBudget, serve, start_tracing
    from commands.http_backed.commands_file import CommandsFileError
    from telemetry.setup import SHUTDOWN_TIMEOUT_S, shutdown

    config = settings()
    if config.discord_token is None or not config.discord_token.get_secret_value().strip():
        raise Failure("DISCORD_TOKEN is not set")
    check_bot_start(config)
    configure_logging()
    provider = start_tracing(config)
    budget = ShutdownBudget()
    try:
        asyncio.run(serve(config, config.discord_token.get_secret_value().strip(), budget))
    except discord.LoginFailure:
        raise Failure("Discord rejected DISCORD_TOKEN (401 Unauthorized)") from None
    except discord.PrivilegedIntentsRequired:
        raise Failure(
            "the message content intent is not enabled for this bot in the developer portal"
        ) from None
    except (CommandsFileError, ConfigError) as exc:
        raise Failure(str(exc)) from None
    except (OSError, discord.DiscordException) as exc:
        raise Failure(f"cannot reach Discord: {exc}") from None
    finally:
        shutdown(provider, budget.left(SHUTDOWN_TIMEOUT_S))


@click.command()
@click.option(
    "-c",
    "--command",
    "lines",
    multiple=True,
    metavar="TEXT",
    help="Send TEXT as a message, print the reply and trace, and exit (repeatable).",
)
@click.option(
    "--as",
    "user_id",
    type=click.IntRange(min=1),
    metavar="USER_ID",
    help="Type as this user id (flag rules' targetingKey).",
)
@click.option(
    "--role",
    "role_ids",
    multiple=True,
    type=click.IntRange(min=1),
    metavar="ROLE_ID",
    help="Hold this role in the guild (repeatable).",
)
@click.option("--admin", is_flag=True, help="Hold the guild's Administrator role.")
@click.option(
    "--guild",
    "guild_id",
    type=click.IntRange(min=1),
    metavar="GUILD_ID",
    help="Type in this guild (flag rules' guildId).",
)
@click.option(
    "--no-fakes",
    is_flag=True,
    help="Start no local fakes: unconfigured services are the public ones.",
)
def console(
    lines: tuple[str, ...],
    user_id: int | None,
    role_ids: tuple[int, ...],
    admin: bool,
    guild_id: int | None,
    no_fakes: bool,
) -> None:
    """Run the real bot against a local fake Discord (and local fakes of the external
    services it has no configuration for) and chat with it."""
    import asyncio
    import logging

    from rich.console import Console

    from bot.cli.console_session import ConsoleOptions, run_console
    from bot.config import telemetry_config
    from bot.logs import configure_logging
    from bot.sandbox.personas import make_persona
    from commands.http_backed.commands_file import CommandsFileError
    from telemetry.recent import RecentTraces
    from telemetry.setup import build_provider, install, shutdown

    config = settings()
    check_bot_start(config)
    configure_logging(logging.WARNING)
    recent = RecentTraces()
    tracing = telemetry_config(config)
    provider = build_provider(tracing, processors=[recent])
    install(provider, tracing.http_semconv)
    try:
        asyncio.run(
            run_console(
                config,
                lines,
                recent,
                Console(highlight=False, width=None if sys.stdout.isatty() else 120),
                ConsoleOptions(
                    persona=make_persona(user_id, role_ids, admin, guild_id),
                    fakes=not no_fakes,
                    history=config.console_history_path,
                ),
            )
        )
    except CommandsFileError as exc:
        raise Failure(str(exc)) from None
    except (OSError, TimeoutError, RuntimeError) as exc:
        raise Failure(f"the sandbox could not start: {exc}") from None
    finally:
        shutdown(provider)


@click.command("sync-commands")
@click.option("--guild", "guild_id", type=int, default=None, help="Register in this guild only.")
@click.option(
    "--clear",
    is_flag=True,
    help="Remove the commands registered in --guild (the global ones stay).",
)
def sync_commands(guild_id: int | None, clear: bool) -> None:
    """Register the slash commands with Discord (globally, or in one guild at once).

    A guild that got the commands with --guild lists them twice once the global
    ones arrive; --guild ID --clear removes the guild's copies.
    """
    import asyncio

    import discord

    from bot.sync import sync_commands as sync
    from commands.http_backed.commands_file import CommandsFileError

    if clear and guild_id is None:
        raise Failure("--clear needs --guild ID (the global commands are replaced by a sync)")
    config = settings()
    if config.discord_token is None or not config.discord_token.get_secret_value().strip():
        raise Failure("DISCORD_TOKEN is not set")
    check_bot_start(config)
    try:
        synced = asyncio.run(
            sync(config, config.discord_token.get_secret_value().strip(), guild_id, clear=clear)
        )
    except discord.LoginFailure:
        raise Failure("Discord rejected DISCORD_TOKEN (401 Unauthorized)") from None
    except discord.Forbidden:
        raise Failure(f"no applications.commands access in guild {guild_id}") from None
    except CommandsFileError as exc:
        raise Failure(str(exc)) from None
    except (OSError, discord.DiscordException) as exc:
        raise Failure(f"cannot register the commands: {exc}") from None
    if clear:
        click.echo(f"removed the commands registered in guild {guild_id}; the global ones remain")
        return
    where = f"in guild {guild_id}" if guild_id is not None else "globally"
    names = ", ".join(f"/{command.name}" for command in synced)
    click.echo(f"registered {len(synced)} command(s) {where}: {names}")
