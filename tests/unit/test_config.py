"""Configuration from the environment: defaults, parsing, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import HONEYCOMB_ENDPOINT, ConfigError, load_settings


def test_defaults_match_the_design(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    settings = load_settings(_env_file=None)
    assert settings.bot_prefix == "!"
    assert settings.discord_api_base == "https://discord.com/api/v10"
    assert settings.health_port == 8080
    assert str(settings.span_store_path) == ".chatops/spans.db"


def test_span_store_off_disables_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPAN_STORE", "off")
    assert load_settings(_env_file=None).span_store_path is None


def test_honeycomb_key_implies_honeycomb_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.setenv("HONEYCOMB_API_KEY", "hc-key")
    settings = load_settings(_env_file=None)
    assert settings.otlp_endpoint == HONEYCOMB_ENDPOINT
    assert "hc-key" not in repr(settings)


def test_lists_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_RESOURCE_GROUP", "web, jobs")
    monkeypatch.setenv("SHARD_IDS", "0,1,2")
    settings = load_settings(_env_file=None)
    assert settings.azure_resource_group == ["web", "jobs"]
    assert settings.shard_ids == [0, 1, 2]


def test_bad_value_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALTH_PORT", "eighty")
    with pytest.raises(ConfigError) as raised:
        load_settings(_env_file=None)
    assert str(raised.value).startswith("invalid HEALTH_PORT:")
    assert "\n" not in str(raised.value)


def test_env_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOT_PREFIX", raising=False)
    env = tmp_path / ".env"
    env.write_text("BOT_PREFIX=?\n")
    assert load_settings(_env_file=env).bot_prefix == "?"
