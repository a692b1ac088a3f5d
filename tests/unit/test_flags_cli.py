"""Fractional rollouts, the flag file checker and ``chatops flags check|eval``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bot.cli.main import cli
from commands.toolkit.flag_checks import make_context
from commands.toolkit.flags import FlagsConfig, evaluate, shutdown_flags, start_flags

REPO_FLAGS = Path(__file__).resolve().parents[2] / "flags.json"


def rollout(percent: int) -> dict[str, Any]:
    return {
        "flags": {
            "rollout": {
                "state": "ENABLED",
                "variants": {"on": True, "off": False},
                "defaultVariant": "off",
                "targeting": {
                    "fractional": [
                        {"cat": [{"var": "$flagd.flagKey"}, {"var": "guildId"}]},
                        ["on", percent],
                        ["off", 100 - percent],
                    ]
                },
            }
        }
    }


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(rollout(30)))
    start_flags(FlagsConfig(file=path))
    yield path
    shutdown_flags()


def test_a_fractional_rollout_is_stable_per_guild_and_close_to_its_split(started: Path) -> None:
    guilds = [str(10**17 + 7919 * i) for i in range(2000)]

    def answers(user: str) -> list[bool]:
        return [evaluate("rollout", False, make_context(user, guild_id=g)).value for g in guilds]

    first = answers("1")
    assert answers("2") == first  # by guild: every user in a guild gets the same answer
    assert 0.25 < sum(first) / len(first) < 0.35


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def test_the_repository_flag_file_is_valid() -> None:
    result = invoke("flags", "check", str(REPO_FLAGS))
    assert result.exit_code == 0, result.output
    assert "4 flags OK" in result.output


def test_check_reports_json_errors_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text('{\n  "flags": {\n    "x": {"state": "ENABLED",}\n  }\n}\n')
    result = invoke("flags", "check", str(path))
    assert result.exit_code == 1
    assert "line 3, column" in result.output and "invalid JSON" in result.output


def test_check_reports_schema_errors_by_flag(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    bad = rollout(30)
    flag = bad["flags"]["rollout"]
    flag["defaultVariant"] = "maybe"
    flag["targeting"]["fractional"][1] = ["onn", 30]
    flag["targeting"]["fractional"][2] = ["off", -1]
    bad["flags"]["other"] = {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "off",
        "targeting": {"if": [{"var": "guildID"}, "yes", "off"]},
    }
    path.write_text(json.dumps(bad))
    result = invoke("flags", "check", str(path))
    assert result.exit_code == 1
    out = result.output
    assert "flags.rollout.defaultVariant: 'maybe' is not one of the variants" in out
    assert "targeting returns 'onn', which is not a variant" in out
    assert "weight -1 must be a whole number >= 0" in out
    assert "flags.other.targeting.if[1]: targeting returns 'yes'" in out
    assert "warning" in out and "'guildID'" in out


def test_check_of_a_missing_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = invoke("flags", "check", str(tmp_path / "nope.json"))
    assert result.exit_code == 2
    assert result.output.strip().endswith("file not found")


def test_eval_shows_value_variant_and_reason() -> None:
    args = ["flags", "eval", "aci-operator", "--file", str(REPO_FLAGS), "--guild", "5"]
    admin = invoke(*args, "--user", "42", "--admin")
    assert admin.exit_code == 0, admin.output
    assert "aci-operator = true" in admin.output
    assert "variant: on" in admin.output and "reason: targeting_match" in admin.output
    other = invoke(*args, "--user", "42", "--role", "7")
    assert "aci-operator = false" in other.output and "variant: off" in other.output


def test_eval_of_an_unknown_flag_exits_1(tmp_path: Path) -> None:
    result = invoke("flags", "eval", "nope", "--user", "1", "--file", str(REPO_FLAGS))
    assert result.exit_code == 1
    assert "flag_not_found" in result.output
