"""The commands file: what start-up accepts, and the one line it prints for what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from commands.http_backed.commands_file import CommandsFileError, load_commands
from commands.http_backed.templates import check_request_template, json_path, placeholders, render

GOOD = """
[[command]]
name = "relationships"
description = "How two people know each other."
url = "https://fn.example.net/api/relationships"
query = { user = "{author_id}", target = "{arg1}" }
timeout = 30
response = { type = "json", field = "result.summary" }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "commands.toml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str, reserved: tuple[str, ...] = ()) -> str:
    with pytest.raises(CommandsFileError) as caught:
        load_commands(write(tmp_path, text), reserved=reserved)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_missing_file_means_no_commands(tmp_path: Path) -> None:
    assert load_commands(tmp_path / "nope.toml") == []


def test_the_shipped_example_is_valid() -> None:
    specs = load_commands(Path(__file__).parents[2] / "commands.example.toml")
    assert "relationships" in [spec.name for spec in specs]


def test_a_good_file_loads(tmp_path: Path) -> None:
    (spec,) = load_commands(write(tmp_path, GOOD))
    assert spec.name == "relationships"
    assert spec.arg_count() == 1
    assert spec.method == "GET"


def test_errors_name_the_file_the_command_and_the_field(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD.replace("timeout = 30", "timeout = -1"))
    assert message == (
        f"{tmp_path / 'commands.toml'}: command 'relationships': timeout: "
        "Input should be greater than 0"
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("timeout = 30", "timeout = 30\ncolour = 'red'"),
            "colour: Extra inputs are not permitted",
        ),
        (('"{arg1}"', '"{arg1.__class__}"'), "unknown placeholder {arg1.__class__}"),
        (('"{arg1}"', '"{0}"'), "unknown placeholder {0}"),
        (('"{arg1}"', '"{arg1!r}"'), "may not have a format spec or conversion"),
        (('"{arg1}"', '"{arg1"'), "query: "),
        (('relationships"\n', 'Bad Name"\n'), "name: String should match pattern"),
        (("https://fn.example.net", "ftp://fn.example.net"), "url: must be an absolute http(s)"),
        (('/relationships"', '/relationships?code=abc"'), "'code' looks like a credential"),
        (('type = "json", field', 'type = "json", nofield'), "response.nofield: Extra inputs"),
        (('type = "json"', 'type = "xml"'), "response.type: "),
    ],
)
def test_invalid_fields_are_refused(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in GOOD
    message = error_of(tmp_path, GOOD.replace(old, new, 1))
    assert ": command '" in message
    assert expected in message


def test_invalid_toml_is_one_line(tmp_path: Path) -> None:
    assert "invalid TOML" in error_of(tmp_path, "[[command]\nname = 1")


def test_a_name_may_not_clash_with_a_built_in(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD, reserved=("relationships", "ping"))
    assert message.endswith("command 'relationships': name clashes with a built-in command")


def test_a_name_may_not_be_declared_twice(tmp_path: Path) -> None:
    assert error_of(tmp_path, GOOD + GOOD).endswith("declared twice")


def test_templates_are_plain_names_only() -> None:
    assert list(placeholders("{{literal}} {arg1} {author_id}")) == ["arg1", "author_id"]
    assert render("{{x}} {a}", {"a": "1"}.__getitem__) == "{x} 1"
    with pytest.raises(ValueError, match="unknown placeholder"):
        check_request_template("{args[0]}")


def test_json_paths_walk_dicts_and_lists() -> None:
    assert json_path({"a": [{"b": 2}]}, "a.0.b") == 2
    with pytest.raises(KeyError):
        json_path({"a": []}, "a.0")
