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
