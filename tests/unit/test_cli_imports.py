"""The ``chatops`` group imports a verb's module only when that verb runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from bot.cli import (
    bot_verbs,
    build_verbs,
    ci_verbs,
    deploy_verbs,
    doctor_verbs,
    flag_verbs,
    query_verbs,
)
from bot.cli.main import VERBS, cli
from tests.store_data import random_spans, write

VERB_MODULES = (
    *(bot_verbs, build_verbs, ci_verbs, deploy_verbs),
    *(doctor_verbs, flag_verbs, query_verbs),
)

# What ``chatops stats`` has no use for: the bot, its HTTP client, the tracing SDK, Azure.
HEAVY = ("discord", "aiohttp", "azure", "opentelemetry.sdk", "opentelemetry.exporter", "grpc")

PROBE = """
import json, sys
from bot.cli.main import main
sys.argv = ["chatops", *sys.argv[1:]]
try:
    main()
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def imported_by(args: list[str], store: Path) -> tuple[int, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env={"SPAN_STORE": str(store), "PATH": "/usr/bin:/bin"},
        cwd=store.parent,
        check=False,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return report["code"], report["modules"]


def test_query_verbs_import_nothing_they_do_not_need(tmp_path: Path) -> None:
    store = tmp_path / "spans.db"
    write(store, random_spans(50, seed=4))
    for args in (
        ["stats", "--since", "7d"],
        ["stats", "--since", "7d", "--heatmap"],
        ["traces", "--since", "7d"],
    ):
        code, modules = imported_by(args, store)
        assert code == 0, args
        heavy = [m for m in modules if m.startswith(HEAVY)]
        assert heavy == [], (args, heavy[:5])
        assert "bot.cli.bot_verbs" not in modules and "bot.cli.ci_verbs" not in modules


def test_help_lists_every_verb_of_every_verb_module() -> None:
    defined = {
        command.name
        for module in VERB_MODULES
        for command in vars(module).values()
        if isinstance(command, click.Command) and command.name and not _is_subcommand(command)
    }
    assert set(VERBS) == defined
    out = CliRunner().invoke(cli, ["--help"]).output
    listed = {line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == defined


def _is_subcommand(command: click.Command) -> bool:
    groups = [
        value
        for module in VERB_MODULES
        for value in vars(module).values()
        if isinstance(value, click.Group)
    ]
    return any(command in group.commands.values() for group in groups)
