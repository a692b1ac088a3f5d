"""``chatops flags check|eval``: a flag file's problems, and one flag's answer for one user.

Both read flags exactly as the bot does (``commands.toolkit.flag_file`` for the checks the
bot warns about, ``commands.toolkit.flags`` for evaluation), so what they say is what
the bot will do.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from bot.cli.exits import Failure, settings
from bot.cli.output import emit_json, format_option
from bot.config import flags_config

EXIT_PROBLEMS = 1
# Tried in order: flagd answers TYPE_MISMATCH when the flag's variants are another type.
EVAL_DEFAULTS: tuple[bool | str | int | float, ...] = (False, "", 0, 0.0)


@click.group()
def flags() -> None:
    """Check a flag file, or evaluate a flag for a user (FLAGS_FILE, or a remote flagd)."""


@flags.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@format_option()
def check(file: Path | None, fmt: str) -> None:
    """Validate FILE (default FLAGS_FILE): exit 0 if usable, 1 on errors, 2 if unreadable."""
    from commands.toolkit.flag_file import check_file

    path = file if file is not None else settings().flags_file
    report = check_file(path)
    if not report.readable:
        raise Failure(f"{path}: {report.problems[0].message}")
    if fmt == "json":
        emit_json(
            {
                "file": str(path),
                "flags": report.flag_count,
                "problems": [
                    {"severity": p.severity, "where": p.where, "message": p.message}
                    for p in report.problems
                ],
            }
        )
        if report.errors:
            raise click.exceptions.Exit(EXIT_PROBLEMS)
        return
    for problem in report.problems:
        click.echo(f"{path}: {problem.severity}: {problem.text}", err=True)
    errors, warnings = len(report.errors), len(report.warnings)
    if errors:
        click.echo(f"{path}: {errors} error(s), {warnings} warning(s)", err=True)
        raise click.exceptions.Exit(EXIT_PROBLEMS)
    noun = "flag" if report.flag_count == 1 else "flags"
    click.echo(
        f"{path}: {report.flag_count} {noun} OK" + (f", {warnings} warning(s)" if warnings else "")
    )


@flags.command("eval")
@click.argument("key")
@click.option("--user", required=True, metavar="ID", help="The author's user id (targetingKey).")
@click.option("--guild", metavar="ID", help="Guild id (guildId); omit for a direct message.")
@click.option("--channel", metavar="ID", help="Channel id (channelId).")
@click.option("--role", "roles", multiple=True, metavar="ID", help="A role id (repeatable).")
@click.option("--admin", is_flag=True, help="The author has the Administrator permission.")
@click.option(
    "--file",
    "file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Evaluate this flag file instead of the configured source.",
)
@format_option()
def eval_(
    key: str,
    user: str,
    guild: str | None,
    channel: str | None,
    roles: tuple[str, ...],
    admin: bool,
    file: Path | None,
    fmt: str,
) -> None:
    """Show KEY's value, variant and reason for a user; exit 1 if it cannot be evaluated."""
    from openfeature.exception import ErrorCode

    from commands.toolkit.flag_checks import make_context
    from commands.toolkit.flags import evaluate, shutdown_flags, start_flags

    config = flags_config(settings())
    if file is not None:
        config = dataclasses.replace(config, provider="file", file=file)
    context = make_context(user, guild_id=guild, channel_id=channel, role_ids=roles, admin=admin)
    start_flags(config, wait=True)
    try:
        details: Any = None
        for default in EVAL_DEFAULTS:
            details = evaluate(key, default, context)
            if details.error_code != ErrorCode.TYPE_MISMATCH:
                break
    finally:
        shutdown_flags()
    if fmt == "json":
        emit_json(
            {
                "key": key,
                "value": details.value,
                "variant": details.variant,
                "reason": str(details.reason).lower(),
                "error_code": str(details.error_code).lower() if details.error_code else None,
                "error_message": details.error_message,
            }
        )
        if details.error_code is not None:
            raise click.exceptions.Exit(EXIT_PROBLEMS)
        return
    click.echo(f"{key} = {_show(details.value)}")
    click.echo(f"variant: {details.variant if details.variant is not None else '-'}")
    click.echo(f"reason: {str(details.reason).lower()}")
    if details.error_code is not None:
        message = f": {details.error_message}" if details.error_message else ""
        click.echo(f"error: {str(details.error_code).lower()}{message}", err=True)
        raise click.exceptions.Exit(EXIT_PROBLEMS)


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)
