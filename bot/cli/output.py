"""Where the CLI's tables go: a terminal's width, or (piped, redirected) lines that are not cut.

rich lays tables out for 80 columns when stdout is not a terminal, so
``chatops stats | grep`` or ``> report.txt`` would get wrapped, truncated cells.
Piped, the width is generous and a table takes only what its cells need.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console

PIPED_WIDTH = 400


def console() -> Console:
    """A rich console for stdout: the terminal's width, or ``PIPED_WIDTH`` when piped."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=PIPED_WIDTH)


def emit_json(data: Any) -> None:
    """``--format json``: indented, one document on stdout, nothing else there."""
    click.echo(json.dumps(data, indent=2, default=str))


FORMATS = click.Choice(["table", "json"])


F = TypeVar("F", bound=Callable[..., Any])


def format_option(default: str = "table") -> Callable[[F], F]:
    """``--format table|json``, the same on every verb that prints data."""
    return click.option(
        "--format", "fmt", type=FORMATS, default=default, show_default=True, help="table or JSON"
    )
