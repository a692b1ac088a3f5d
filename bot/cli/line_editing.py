"""Line editing and history for the console's prompt, from the standard library's ``readline``.

Importing ``readline`` is what makes ``input()`` edit lines (arrow keys, Ctrl-R)
instead of echoing ``^[[A``. Where it is missing (Windows without pyreadline)
the prompt still works, without editing. History is kept in a file (the user's
state directory, ``Settings.console_history_path``), at most ``HISTORY_LINES``
lines, read at start and written at exit; a file that cannot be read or written
costs the history, never the session.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Self

HISTORY_LINES = 1000


def _readline() -> ModuleType | None:
    try:
        import readline
    except ImportError:  # pragma: no cover - platforms without readline
        return None
    return readline


class LineEditor:
    """``read(prompt)`` is ``input(prompt)`` with editing and a bounded, persistent history."""

    def __init__(self, history: Path | None, *, limit: int = HISTORY_LINES) -> None:
        self.history = history
        self.limit = limit
        self.readline = _readline()

    def __enter__(self) -> Self:
        if self.readline is not None:
            self.readline.set_history_length(self.limit)
            if self.history is not None and self.history.exists():
                with contextlib.suppress(OSError):
                    self.readline.read_history_file(self.history)
        return self

    def read(self, prompt: str) -> str:
        return input(prompt)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.readline is None or self.history is None:
            return
        with contextlib.suppress(OSError):
            self.history.parent.mkdir(parents=True, exist_ok=True)
            self.readline.write_history_file(self.history)
