"""``chatops doctor``: one table of checks, a fix for each failure, exit 1 when something is broken.

Tests pass ``DoctorHooks`` as click's ``obj`` (an Azure credential and the fake
ARM's certificate); production passes none.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click
from rich.table import Table
from rich.text import Text

from bot.cli.exits import settings
from bot.cli.output import console, emit_json, format_option

if TYPE_CHECKING:
    from bot.azure_wiring import AzureOptions
    from bot.doctor import Check

EXIT_BROKEN = 1
STYLES = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


@dataclass(frozen=True)
class DoctorHooks:
    """Test seam: Azure client options (a credential, a CA file for the fake ARM)."""

    azure: AzureOptions | None = None


@click.command(name="doctor")
@format_option()
@click.pass_obj
def doctor_command(hooks: DoctorHooks | None, fmt: str) -> None:
    """Check the token, intents, Honeycomb, OTLP, Azure roles, flag and commands files, ports.

    Exit code 0 when nothing failed (warnings and skipped checks allowed), 1 otherwise.
    """
    from bot.doctor import broken, run_checks

    config = settings()
    checks = asyncio.run(run_checks(config, (hooks or DoctorHooks()).azure))
    if fmt == "json":
        emit_json({"ok": not broken(checks), "checks": [c.to_json() for c in checks]})
    else:
        console().print(doctor_table(checks))
    if broken(checks):
        raise click.exceptions.Exit(EXIT_BROKEN)


def doctor_table(checks: list[Check]) -> Table:
    table = Table(title="chatops doctor", title_justify="left")
    for column in ("check", "status", "detail", "fix"):
        table.add_column(column, overflow="fold")
    for check in checks:
        table.add_row(
            check.name,
            Text(check.status, style=STYLES[check.status]),
            check.detail,
            check.fix,
        )
    failed = sum(check.status == "fail" for check in checks)
    table.caption = f"{failed} failed" if failed else "nothing failed"
    return table
