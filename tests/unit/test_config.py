"""Configuration from the environment: defaults, parsing, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import (
    HONEYCOMB_ENDPOINT,
    ConfigError,
    check_bot_requirements,
    load_settings,
    telemetry_config,
)


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
    assert settings.otlp_traces_url == HONEYCOMB_ENDPOINT + "/v1/traces"
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


def test_good_values_of_the_checked_settings_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARD_IDS", "0")
    monkeypatch.setenv("DISCORD_GATEWAY_URL", "wss://gateway.discord.gg")
    monkeypatch.setenv("SCRYFALL_API_URL", " http://127.0.0.1:8081/scryfall ")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")  # left empty in a .env: unset
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-honeycomb-team=key,, x-other=2")
    monkeypatch.delenv("HONEYCOMB_API_KEY", raising=False)
    settings = load_settings(_env_file=None)
    assert settings.shard_ids == [0]
    assert settings.discord_gateway_url == "wss://gateway.discord.gg"
    assert settings.scryfall_api_url == "http://127.0.0.1:8081/scryfall"
    assert settings.otlp_traces_url is None
    assert settings.otlp_headers == {"x-honeycomb-team": "key", "x-other": "2"}


def test_azure_without_a_resource_group_stops_only_the_bot(monkeypatch: pytest.MonkeyPatch) -> None:
    # A pipeline may export AZURE_SUBSCRIPTION_ID for its own tools; `ci step` must still run.
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "0f0e7c1a-0000-0000-0000-000000000000")
    monkeypatch.delenv("AZURE_RESOURCE_GROUP", raising=False)
    settings = load_settings(_env_file=None)
    with pytest.raises(ConfigError, match="AZURE_RESOURCE_GROUP is not"):
        check_bot_requirements(settings)


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        (None, "stable"),
        ("http", "stable"),
        ("database", "stable"),
        ("http/dup", "dup"),
        ("database, HTTP/DUP", "dup"),
    ],
)
def test_semconv_opt_in_chooses_the_http_attribute_names(
    monkeypatch: pytest.MonkeyPatch, value: str | None, mode: str
) -> None:
    if value is None:
        monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    else:
        monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", value)
    settings = load_settings(_env_file=None)
    assert settings.http_semconv == mode
    assert telemetry_config(settings).http_semconv == mode


def test_the_readme_and_running_md_list_every_standard_variable_the_bot_reads() -> None:
    """Every ``OTEL_*`` variable ``Settings`` reads, plus those the SDK reads for it."""
    from bot.config import Settings

    names = {"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_SDK_DISABLED"}
    for field_name, info in Settings.model_fields.items():
        aliases = getattr(info.validation_alias, "choices", [])
        names |= {alias for alias in aliases if alias.startswith("OTEL_")}
        if field_name.startswith("otel_"):
            names.add(field_name.upper())
    assert "OTEL_SEMCONV_STABILITY_OPT_IN" in names
    root = Path(__file__).resolve().parents[2]
    for page in ("README.md", "docs/running.md"):
        text = (root / page).read_text()
        assert not {name for name in names if f"`{name}`" not in text}, page


def test_one_shard_id_alone_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARD_IDS", "1")
    settings = load_settings(_env_file=None)
    assert settings.shard_ids == [1]
