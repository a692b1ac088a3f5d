"""CI settings: BuildKite's backfill window, the CircleCI id scheme, webhook spans."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from bot import ci_wiring
from bot.ci_services import CiServices
from bot.config import ConfigError, Settings, load_settings


def test_buildkite_backfill_defaults_to_honeycombs_60_days_and_reads_7d() -> None:
    assert load_settings(_env_file=None).buildkite_backfill == timedelta(days=60)
    assert load_settings(_env_file=None, buildkite_backfill="7d").buildkite_backfill == (
        timedelta(days=7)
    )


def test_unknown_circleci_id_scheme_is_refused() -> None:
    assert load_settings(_env_file=None).circleci_id_scheme == "chatops"
    with pytest.raises(ConfigError, match="CIRCLECI_ID_SCHEME"):
        load_settings(_env_file=None, circleci_id_scheme="random")


async def test_the_in_bot_poller_backfills_on_its_first_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}

    async def fake_poller(settings: Settings, since: datetime, *args: Any, **kw: Any) -> None:
        seen["since"] = since

    monkeypatch.setattr(ci_wiring, "buildkite_poller", fake_poller)
    settings = load_settings(
        _env_file=None,
        buildkite_api_token=SecretStr("t"),
        buildkite_org="acme",
        otel_exporter_otlp_endpoint="http://127.0.0.1:4318",
        buildkite_backfill="30d",
    )

    async def announce(_event: object) -> None: ...

    services = CiServices(settings, announce)
    services.start()
    await asyncio.sleep(0)
    await services.close(0.5)
    expected = datetime.now(UTC) - timedelta(days=30)
    assert abs((seen["since"] - expected).total_seconds()) < 60


def test_running_md_lists_every_ci_setting() -> None:
    """The configuration table is where an operator looks: a CI setting missing there is
    one nobody sets."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "running.md").read_text()
    prefixes = ("circleci_", "ci_", "buildkite_")
    names = {name.upper() for name in Settings.model_fields if name.startswith(prefixes)}
    assert "CIRCLECI_TOKEN" in names and "CIRCLECI_POLL_LOOKBACK" in names
    assert sorted(name for name in names if f"`{name}`" not in text) == []


def test_circleci_poller_settings_read_slugs_and_a_look_back() -> None:
    settings = load_settings(
        _env_file=None,
        circleci_projects="gh/acme/app, github/acme/infra",
        circleci_poll_lookback="6h",
    )
    assert settings.circleci_projects == ["gh/acme/app", "github/acme/infra"]
    assert settings.circleci_poll_lookback == timedelta(hours=6)
    assert "SecretStr" in repr(load_settings(_env_file=None, circleci_token="t0ken").circleci_token)
    for bad in ("acme/app", "gh/acme/app/extra", "gh/../app"):
        with pytest.raises(ConfigError, match="CIRCLECI_PROJECTS"):
            load_settings(_env_file=None, circleci_projects=bad)
