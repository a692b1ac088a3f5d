"""How ``chatops deploy`` shows its phases: a live status line in a terminal, plain lines otherwise.

The deploy itself (``bot/deploy.py``) only calls two hooks: ``phase(name)`` as a
phase starts and ``line(text)`` for each finished phase or note. In a terminal
the running phase is a spinner with its elapsed time under the finished ones;
piped or in CI, where a redrawn line would be noise in the log, each finished
phase is one plain line, as before.
"""

from __future__ import annotations

import sys
from typing import Protocol

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn


class DeployProgress(Protocol):
    def phase(self, name: str) -> None: ...

    def line(self, text: str) -> None: ...

    def close(self) -> None: ...


class PlainProgress:
    """One line per finished phase or note; nothing redrawn."""

    def phase(self, name: str) -> None:
        """A finished phase prints its own line; a start would only double the log."""

    def line(self, text: str) -> None:
        click.echo(text)

    def close(self) -> None:
        return None


class LiveProgress:
    """A spinner and a clock for the running phase; finished phases stay printed above it."""

    def __init__(self, console: Console | None = None) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.current: TaskID | None = None
        self.progress.start()

    def phase(self, name: str) -> None:
        self._finish_current()
        self.current = self.progress.add_task(name, total=None)

    def line(self, text: str) -> None:
        self._finish_current()
        self.progress.console.print(text, highlight=False, markup=False)

    def close(self) -> None:
        self._finish_current()
        self.progress.stop()

    def _finish_current(self) -> None:
        if self.current is not None:
            self.progress.remove_task(self.current)
            self.current = None


def choose() -> DeployProgress:
    """Live in a terminal, plain lines when piped or redirected."""
    return LiveProgress() if sys.stdout.isatty() else PlainProgress()
