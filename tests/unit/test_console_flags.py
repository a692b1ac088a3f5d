"""Which flags file ``chatops console`` evaluates: the operator's, else the example it ships."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import pytest
from hatchling.builders.wheel import WheelBuilder

from bot.config import Settings, load_settings
from bot.sandbox.offline import console_flags

ROOT = Path(__file__).resolve().parents[2]
PACKAGED = "bot/sandbox/fakes/flags.json"


@pytest.fixture
def outside_the_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current directory and no FLAGS_FILE or FLAGS_PROVIDER in the environment."""
    monkeypatch.delenv("FLAGS_FILE", raising=False)
    monkeypatch.delenv("FLAGS_PROVIDER", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def unset() -> Settings:
    return load_settings(_env_file=None, span_store="off")


def test_the_example_flags_file_ships_in_the_package_as_the_checkout_s_copy() -> None:
    shipped = files("bot.sandbox.fakes") / "flags.json"
    assert shipped.is_file()
    # The checkout's flags.json (documented, copied into the image) and the shipped one
    # are one file twice: an edit to one must be made to the other.
    assert json.loads(shipped.read_text(encoding="utf-8")) == json.loads(
        (ROOT / "flags.json").read_text(encoding="utf-8")
    )


def test_the_wheel_would_contain_the_example_flags_file() -> None:
    # hatchling's own selection of the wheel's files, without building anything
    included = {f.distribution_path for f in WheelBuilder(str(ROOT)).recurse_included_files()}
    assert PACKAGED in included


def test_without_flags_file_or_local_file_the_console_uses_the_shipped_example(
    outside_the_checkout: Path,
) -> None:
    with console_flags(unset()) as (settings, line):
        assert settings.flags_file.read_bytes() == (ROOT / PACKAGED).read_bytes()
        assert line is not None and "example file shipped with chatops" in line


def test_a_flags_json_in_the_current_directory_is_used(outside_the_checkout: Path) -> None:
    (outside_the_checkout / "flags.json").write_text("{}", encoding="utf-8")
    with console_flags(unset()) as (settings, line):
        assert settings.flags_file == Path("flags.json")
        assert line is None


def test_a_configured_flags_file_is_used_as_given_even_if_missing(
    outside_the_checkout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLAGS_FILE", "/nonexistent/flags.json")
    with console_flags(unset()) as (settings, line):
        assert settings.flags_file == Path("/nonexistent/flags.json")
        assert line is None


def test_a_flagd_server_is_used_as_given(
    outside_the_checkout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLAGS_PROVIDER", "rpc")
    with console_flags(unset()) as (settings, line):
        assert settings.flags_file == Path("flags.json") and line is None
