"""Running ``chatops console`` offline as a process, and reading what it printed."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
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


def console_env(tmp_path: Path, env: dict[str, str | None]) -> dict[str, str]:
    """Offline, the example flags, no external setting; ``env`` on top (None: removed)."""
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
    return environment


def run_console(tmp_path: Path, *args: str, **env: str | None) -> Transcript:
    """``chatops console ARGS`` in an empty directory, offline, the example flags.

    ``env`` adds variables; one given as None is removed (``FLAGS_FILE=None``: unset).
    """
    done = subprocess.run(
        [sys.executable, "-m", "bot", "console", *args],
        capture_output=True,
        text=True,
        env=console_env(tmp_path, env),
        cwd=tmp_path,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return transcript_of(done.stdout, done.stderr)


def drive_console(
    tmp_path: Path, first: str, then: Callable[[str], list[str]], **env: str | None
) -> tuple[Transcript, str]:
    """``chatops console`` reading lines from a pipe, as a person at the prompt would type:
    ``first``, then, once its trace id is printed, the lines ``then(trace_id)``.

    Returns the transcript and that trace id: a later line can look it up (``!trace``).
    """
    environment = console_env(tmp_path, env) | {"PYTHONUNBUFFERED": "1"}
    with (tmp_path / "stderr.txt").open("w+", encoding="utf-8") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-m", "bot", "console"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=environment,
            cwd=tmp_path,
        )
        assert child.stdin is not None and child.stdout is not None
        try:
            child.stdin.write(f"{first}\n")
            child.stdin.flush()
            printed: list[str] = []
            trace_id = None
            while trace_id is None and (line := child.stdout.readline()):
                printed.append(line)
                found = re.match(r"trace ([0-9a-f]{32})\b", line)
                if found and any(p.startswith(PROMPT) for p in printed):
                    trace_id = found.group(1)
            assert trace_id is not None, "".join(printed)
            child.stdin.write("".join(f"{line}\n" for line in then(trace_id)))
            child.stdin.close()
            printed.append(child.stdout.read())
            assert child.wait(timeout=180) == 0
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        stderr.seek(0)
        return transcript_of("".join(printed), stderr.read()), trace_id


def transcript_of(stdout: str, stderr: str) -> Transcript:
    banner, *rest = re.split(r"^you> ", stdout, flags=re.MULTILINE)
    exchanges = []
    for chunk in rest:
        typed, _, text = chunk.partition("\n")
        exchanges.append((typed, text))
    return Transcript(banner, exchanges, stderr)


def help_names(text: str) -> set[str]:
    """The command names ``!help`` (or ``/help``) lists, from its code block."""
    listing = text.split("```")[1]
    return set(re.findall(r"^  (\w[\w-]*)\s", listing, re.MULTILINE))
