"""What the data verbs print: ``--format json`` on each, and tables not cut when piped."""

from __future__ import annotations

import json
import time
from pathlib import Path

from click.testing import CliRunner

from bot.cli.main import cli
from bot.cli.output import PIPED_WIDTH
from tests.helpers.stored_spans import root, store_tracer

# The span store fixtures of the query verbs' tests.
from tests.integration.test_query_cli import env, filled  # noqa: F401

REPO_FLAGS = Path(__file__).resolve().parents[2] / "flags.json"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout


def test_trace_json_lists_every_span_with_its_attributes(filled: str) -> None:  # noqa: F811
    code, out = run("trace", filled, "--format", "json")
    assert code == 0
    spans = json.loads(out)
    assert spans[0]["name"] == "command mtg"
    assert spans[0]["attributes"]["app.outcome"] == "error"


def test_flags_eval_json_has_value_variant_and_reason() -> None:
    code, out = run(
        "flags", "eval", "aci-operator", "--file", str(REPO_FLAGS), "--user", "42", "--admin",
        "--format", "json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out) == {
        "key": "aci-operator",
        "value": True,
        "variant": "on",
        "reason": "targeting_match",
        "error_code": None,
        "error_message": None,
    }


def test_flags_eval_json_of_an_unknown_flag_says_why_and_exits_1() -> None:
    code, out = run(
        "flags", "eval", "nope", "--file", str(REPO_FLAGS), "--user", "1", "--format", "json"
    )
    assert code == 1
    assert json.loads(out)["error_code"] == "flag_not_found"


def test_flags_check_json_lists_problems_and_exits_1_on_errors(tmp_path: Path) -> None:
    code, out = run("flags", "check", str(REPO_FLAGS), "--format", "json")
    assert code == 0 and json.loads(out) == {
        "file": str(REPO_FLAGS), "flags": 4, "problems": []
    }  # fmt: skip
    broken = tmp_path / "flags.json"
    broken.write_text('{"flags": {"x": {"state": "ENABLED"}}}')
    code, out = run("flags", "check", str(broken), "--format", "json")
    report = json.loads(out)
    assert code == 1 and report["problems"]
    assert {p["severity"] for p in report["problems"]} == {"error"}


def test_piped_tables_are_not_cut_at_80_columns(env: Path) -> None:  # noqa: F811
    long_name = "relationships-with-a-very-long-command-name-that-goes-past-eighty-columns"
    with store_tracer(env) as tracer:
        root(tracer, long_name, start_ns=time.time_ns() - 10**9, duration_ms=5)
    code, out = run("stats", "--since", "1h")
    assert code == 0
    row = next(line for line in out.splitlines() if long_name in line)
    assert len(row) > 80 and "…" not in row
    assert max(len(line) for line in out.splitlines()) <= PIPED_WIDTH


def test_shell_completion_as_documented_completes_verbs_and_options() -> None:
    runner = CliRunner()
    script = runner.invoke(cli, [], prog_name="chatops", env={"_CHATOPS_COMPLETE": "bash_source"})
    assert "_chatops_completion()" in script.output
    verbs = runner.invoke(
        cli,
        [],
        prog_name="chatops",
        env={"_CHATOPS_COMPLETE": "bash_complete", "COMP_WORDS": "chatops do", "COMP_CWORD": "1"},
    )
    assert verbs.output.split() == ["plain,doctor"]
    options = runner.invoke(
        cli,
        [],
        prog_name="chatops",
        env={
            "_CHATOPS_COMPLETE": "bash_complete",
            "COMP_WORDS": "chatops deploy --resource",
            "COMP_CWORD": "2",
        },
    )
    assert options.output.split() == ["plain,--resource-group"]
