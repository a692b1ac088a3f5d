"""The console's prompt edits lines and remembers them, as a terminal user expects.

Driven through a pseudo-terminal, because ``readline`` edits only when its input
is a terminal: the up arrow brings back the previous line (it used to be sent
as ``^[[A``), and the history outlives the session, bounded.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.cli.line_editing import LineEditor
from tests.helpers.chatops_process import child_env
from tests.helpers.console_transcript import EXAMPLE_FLAGS, ROOT

UP = b"\x1b[A"
PROMPT = b"you> "


class Terminal:
    """``chatops console`` on a pseudo-terminal: type, and read until a prompt appears."""

    def __init__(self, tmp_path: Path) -> None:
        env = child_env(
            PYTHONPATH=str(ROOT),
            FLAGS_FILE=str(EXAMPLE_FLAGS),
            XDG_STATE_HOME=str(tmp_path / "state"),
            TERM="xterm",
        )
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "console"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=tmp_path,
            close_fds=True,
        )
        os.close(slave)
        self.output = b""

    def until_prompt(self, count: int, within: float = 60.0) -> None:
        """Read until ``count`` prompts have been printed in all."""
        deadline = time.monotonic() + within
        while self.output.count(PROMPT) < count:
            left = deadline - time.monotonic()
            assert left > 0, self.output.decode(errors="replace")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                self.output += os.read(self.master, 65536)

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self) -> int:
        self.type(b"\x04")  # Ctrl-D at an empty prompt ends the session
        try:
            return self.process.wait(timeout=30)
        finally:
            os.close(self.master)


@pytest.mark.slow
def test_up_arrow_recalls_the_last_line_and_history_is_kept(tmp_path: Path) -> None:
    terminal = Terminal(tmp_path)
    try:
        terminal.until_prompt(1)
        terminal.type(b"!whoami\r")
        terminal.until_prompt(2)
        terminal.type(UP + b"\r")
        terminal.until_prompt(3)
    finally:
        code = terminal.close()
    text = terminal.output.decode(errors="replace")
    assert code == 0, text
    assert text.count("bot> targetingKey 100000000000000001;") == 2, text
    assert "^[[A" not in text
    history = tmp_path / "state" / "chatops" / "console_history"
    assert history.read_text().splitlines()[-1] == "!whoami"


def test_history_is_bounded_and_read_back(tmp_path: Path) -> None:
    import readline

    path = tmp_path / "state" / "console_history"
    with LineEditor(path, limit=3):
        readline.clear_history()
        for n in range(5):
            readline.add_history(f"!roll {n}d6")
    assert path.read_text().splitlines()[-3:] == ["!roll 2d6", "!roll 3d6", "!roll 4d6"]
    readline.clear_history()
    with LineEditor(path, limit=3):
        kept = [readline.get_history_item(i) for i in range(1, 4)]
    assert kept == ["!roll 2d6", "!roll 3d6", "!roll 4d6"]


def test_an_unwritable_history_costs_the_history_not_the_session(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with LineEditor(blocker / "console_history"):
        pass  # no exception on the way out
