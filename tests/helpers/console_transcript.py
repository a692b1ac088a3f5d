"""Running ``chatops console`` offline as a process, and reading what it printed."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.chatops_process import child_env

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_FLAGS = ROOT / "flags.json"
PROMPT = "you> "


@dataclass
class Transcript:
    """What the console printed: the banner, then each line typed and what followed it."""

    banner: str
    exchanges: list[tuple[str, str]]
    stderr: str

    @property
    def fakes(self) -> dict[str, str]:
        return dict(re.findall(r"^fake ([^:]+): (\S+)$", self.banner, re.MULTILINE))

    def after(self, line: str, nth: int = 0) -> str:
        found = [text for typed, text in self.exchanges if typed == line]
        assert len(found) > nth, f"{line!r} was not typed {nth + 1} time(s)"
        return found[nth]


def flat(text: str) -> str:
    """Whitespace collapsed: the console wraps long answers at its width."""
    return " ".join(text.split())


def run_console(tmp_path: Path, *args: str, **env: str | None) -> Transcript:
    """``chatops console ARGS`` in an empty directory, offline, the example flags.

    ``env`` adds variables; one given as None is removed (``FLAGS_FILE=None``: unset).
    """
    environment = child_env(
        PYTHONPATH=str(ROOT),
        FLAGS_FILE=str(EXAMPLE_FLAGS),
        XDG_STATE_HOME=str(tmp_path / "state"),
        # A tour sends more than a person would type in ten seconds.
        USER_COMMAND_RATE="1000",
    )
    for name in list(environment):
        if name.startswith(("AZURE_", "CATFACT_", "SCRYFALL_", "COMMANDS_", "EXTERNAL_")):
            del environment[name]
    for name, value in env.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    done = subprocess.run(
        [sys.executable, "-m", "bot", "console", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    banner, *rest = re.split(r"^you> ", done.stdout, flags=re.MULTILINE)
    exchanges = []
    for chunk in rest:
        typed, _, text = chunk.partition("\n")
        exchanges.append((typed, text))
    return Transcript(banner, exchanges, done.stderr)


def help_names(text: str) -> set[str]:
    """The command names ``!help`` (or ``/help``) lists, from its code block."""
    listing = text.split("```")[1]
    return set(re.findall(r"^  (\w[\w-]*)\s", listing, re.MULTILINE))
