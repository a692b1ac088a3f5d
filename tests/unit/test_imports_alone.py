"""Every module of bot, commands and telemetry imports on its own, in a fresh interpreter.

A test run imports modules in one order; an import cycle can hide behind that
order (``python -c "import bot.cli_flags"`` once failed while every test
passed). Here each module is the first project module its interpreter sees.

One child interpreter pre-imports the third-party packages the project uses
(never a project module), then forks once per module: each fork starts with no
project module loaded, like ``python -c "import X"``, without paying for
discord.py and OpenTelemetry ninety times over.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "commands", "telemetry")

CHILD = r"""
import ast, importlib, os, sys, traceback
from pathlib import Path

packages, names = sys.argv[1].split(","), sys.argv[2:]

# Third-party modules the project imports (anywhere in a module, even in a
# function): loading them here only saves time in each fork.
for package in packages:
    for path in Path(package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found = [node.module]
            else:
                continue
            for name in found:
                if name.split(".")[0] not in packages:
                    try:
                        importlib.import_module(name)
                    except Exception:
                        pass  # the fork that needs it will say so

loaded = sorted(m for m in sys.modules if m.split(".")[0] in packages)
if loaded:
    sys.exit(f"a third-party import loaded project modules first: {loaded}")

failed, running = 0, 0
for name in names:
    if running == (os.cpu_count() or 1):
        _, status = os.wait()
        running -= 1
        failed += os.waitstatus_to_exitcode(status) != 0
    sys.stdout.flush()
    if os.fork() == 0:
        try:
            importlib.import_module(name)
        except BaseException:
            print(f"--- import {name} failed:\n{traceback.format_exc()}", flush=True)
            os._exit(1)
        os._exit(0)
    running += 1
for _ in range(running):
    _, status = os.wait()
    failed += os.waitstatus_to_exitcode(status) != 0
sys.exit(1 if failed else 0)
"""


def project_modules() -> list[str]:
    """Every module and package of the three packages, by file (nothing is imported)."""
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__main__":
                continue  # a script: importing it runs the CLI
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.append(".".join(parts))
    return names


def test_the_module_list_covers_the_packages() -> None:
    names = project_modules()
    assert {"bot", "bot.cli.main", "bot.cli.flag_verbs", "commands.toolkit.replies"} <= set(names)
    assert "telemetry.pipeline.poller" in names
    assert len(names) > 80


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_every_module_imports_on_its_own() -> None:
    names = project_modules()
    result = subprocess.run(
        [sys.executable, "-c", CHILD, ",".join(PACKAGES), *names],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_test_module_imports_from_another() -> None:
    """No test imports a test module or a conftest: helpers are in tests/helpers."""
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                last = name.split(".")[-1]
                if name.startswith("tests.") and (last.startswith("test_") or last == "conftest"):
                    offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []
