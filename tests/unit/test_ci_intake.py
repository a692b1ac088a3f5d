"""``CI_INTAKE=false``: a shard process that runs neither CI receiver nor poller, though configured.

The template gives the CI secrets only to ``bot-0`` and sets ``CI_INTAKE=false`` on the
others, so the webhook receiver and the BuildKite poller run in exactly one container.
"""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from bot.ci_services import CiServices
from bot.config import Settings, load_settings


def configured(settings: Settings, *, intake: bool) -> Settings:
    return load_settings(
        _env_file=None,
        **{
            **settings.model_dump(exclude_unset=False),
            "ci_intake": intake,
            "circleci_hook_secret": "hook-secret",
            "circleci_otlp_endpoint": "http://127.0.0.1:9",
            "buildkite_api_token": "bk-token",
            "buildkite_org": "acme",
            "otel_exporter_otlp_endpoint": "http://127.0.0.1:9",
        },
    )


async def announce(*_args: object) -> None:
    return None


def routes(app: web.Application) -> list[str]:
    return [r.resource.canonical for r in app.router.routes() if r.resource is not None]


async def test_with_ci_intake_off_nothing_is_received_or_polled(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    services = CiServices(configured(settings, intake=False), announce)
    app = web.Application()
    services.mount(app)
    services.start()
    assert routes(app) == []
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "buildkite-poller"]
    assert "CI_INTAKE=false: the CircleCI webhook receiver runs elsewhere" in caplog.text
    assert "CI_INTAKE=false: the BuildKite poller runs elsewhere" in caplog.text
    await services.close()


async def test_with_ci_intake_on_the_receiver_is_mounted(settings: Settings) -> None:
    services = CiServices(configured(settings, intake=True), announce)
    app = web.Application()
    services.mount(app)
    assert "/hooks/circleci" in routes(app)
    await services.close()


def test_ci_intake_reads_false_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_INTAKE", "false")
    assert load_settings(_env_file=None).ci_intake is False
