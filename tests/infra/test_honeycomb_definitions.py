"""Honeycomb queries and boards kept as code (``infra/honeycomb/`` and ``infra/honeycomb/ci/``).

Every directory passes the same checks: ``chatops honeycomb apply`` can load it,
each query spec is one Honeycomb's Query Specification accepts (ops, filter ops,
orders naming a calculation), and the CI board holds what seed 000 shows: a heatmap
and a P95 of pipeline and of step durations over 7 days.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from telemetry.honeycomb import load_definitions

ROOT = Path(__file__).resolve().parents[2]
DIRECTORIES = [ROOT / "infra" / "honeycomb", ROOT / "infra" / "honeycomb" / "ci"]
WEEK_S = 7 * 24 * 3600

# Honeycomb's Query Specification (docs.honeycomb.io, "Query Specification").
CALCULATION_OPS = {
    "COUNT", "CONCURRENCY", "SUM", "AVG", "COUNT_DISTINCT", "HEATMAP", "MAX", "MIN",
    "RATE_AVG", "RATE_SUM", "RATE_MAX",
}  # fmt: skip
PERCENTILE = re.compile(r"^P(001|01|05|10|20|25|50|75|80|90|95|99|999)$")
FILTER_OPS = {
    "=", "!=", ">", ">=", "<", "<=", "starts-with", "does-not-start-with", "ends-with",
    "does-not-end-with", "exists", "does-not-exist", "contains", "does-not-contain", "in",
    "not-in",
}  # fmt: skip
NO_VALUE = {"exists", "does-not-exist"}
SPEC_KEYS = {
    "time_range", "start_time", "end_time", "granularity", "breakdowns", "calculations",
    "filters", "filter_combination", "orders", "havings", "limit",
}  # fmt: skip


def queries(directory: Path) -> dict[str, dict[str, Any]]:
    return load_definitions(directory).queries


def spec_problems(spec: dict[str, Any]) -> list[str]:
    problems = [f"unknown key {key}" for key in set(spec) - SPEC_KEYS]
    calculations = spec.get("calculations", [])
    if not calculations:
        problems.append("no calculations")
    for calc in calculations:
        op = calc.get("op", "")
        if op not in CALCULATION_OPS and not PERCENTILE.match(op):
            problems.append(f"calculation op {op!r}")
        if op not in ("COUNT", "CONCURRENCY") and not calc.get("column"):
            problems.append(f"{op} needs a column")
    for condition in spec.get("filters", []):
        if condition.get("op") not in FILTER_OPS or not condition.get("column"):
            problems.append(f"filter {condition}")
        elif (condition["op"] in NO_VALUE) != ("value" not in condition):
            problems.append(f"filter value {condition}")
    pairs = {(c.get("op"), c.get("column")) for c in calculations}
    for order in spec.get("orders", []):
        if "op" in order and (order["op"], order.get("column")) not in pairs:
            problems.append(f"order {order} is not one of the calculations")
    if not isinstance(spec.get("time_range", WEEK_S), int):
        problems.append("time_range is not seconds")
    if not all(isinstance(b, str) and b for b in spec.get("breakdowns", [])):
        problems.append("breakdowns must be column names")
    return problems


@pytest.mark.parametrize("directory", DIRECTORIES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_query_is_a_valid_honeycomb_query_spec(directory: Path) -> None:
    found = queries(directory)
    assert found
    for name, query in found.items():
        assert query["name"] and query.get("description"), name
        assert query.get("style", "graph") in ("graph", "table", "combo"), name
        assert spec_problems(query["spec"]) == [], name


@pytest.mark.parametrize("directory", DIRECTORIES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_panel_names_a_query_and_every_query_is_on_the_board(directory: Path) -> None:
    definitions = load_definitions(directory)
    assert sorted(definitions.board["panels"]) == sorted(definitions.queries)


def test_ci_board_has_heatmap_and_p95_of_pipeline_and_step_durations_over_7_days() -> None:
    found = queries(ROOT / "infra" / "honeycomb" / "ci")
    seen = set()
    for query in found.values():
        spec = query["spec"]
        assert spec["time_range"] == WEEK_S
        [calc] = spec["calculations"]
        assert calc["column"] == "duration_ms"
        columns = {f["column"] for f in spec["filters"]}
        level = "pipeline" if "cicd.pipeline.result" in columns else "step"
        if level == "pipeline":  # a run's root span, not a job that reports a result
            assert {"column": "trace.parent_id", "op": "does-not-exist"} in spec["filters"]
        else:  # a step or job, and not its queue wait (which has no task result)
            assert "cicd.pipeline.task.run.result" in columns
        seen.add((calc["op"], level))
    assert seen == {
        ("HEATMAP", "pipeline"),
        ("P95", "pipeline"),
        ("HEATMAP", "step"),
        ("P95", "step"),
    }


def test_ci_board_applies_environment_wide_across_the_ci_datasets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.cli.main import cli
    from bot.cli.query_verbs import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli, ["honeycomb", "apply", "--dir", str(ROOT / "infra/honeycomb/ci"), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "would apply query CI: P95 pipeline duration in __all__" in result.stdout
