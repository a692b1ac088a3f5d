"""Pipelines the bot polls or receives also land in the local span store, by service."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from click.testing import CliRunner

from bot.ci_wiring import buildkite_poller, circleci_receiver
from bot.cli.main import cli
from bot.cli.query_verbs import COMMANDS
from bot.config import load_settings
from telemetry.pipeline.webhook import circleci_routes
from tests.fakes import circleci_hooks
from tests.fakes.buildkite_api import TOKEN, FakeBuildkite, build
from tests.fakes.otlp import OtlpReceiver

for command in COMMANDS:
    cli.add_command(command)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def recent_build(number: int, seconds: int, state: str = "passed") -> dict[str, Any]:
    """Build ``number``, started ``number`` hours ago, that ran ``seconds``."""
    started = datetime.now(UTC) - timedelta(hours=number)
    data = build(number, _iso(started + timedelta(seconds=seconds)), state=state)
    data["created_at"] = data["scheduled_at"] = _iso(started - timedelta(seconds=5))
    data["started_at"] = _iso(started)
    for job in data["jobs"][:1]:
        job["scheduled_at"] = job["created_at"] = _iso(started)
        job["runnable_at"] = job["started_at"] = _iso(started + timedelta(seconds=1))
        job["finished_at"] = _iso(started + timedelta(seconds=seconds - 1))
    return data


async def test_polled_builds_are_in_stats_for_their_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "spans.db"
    async with FakeBuildkite() as api, OtlpReceiver() as otlp:
        api.builds = [
            recent_build(1, 60),
            recent_build(2, 120),
            recent_build(3, 600, state="failed"),
        ]
        settings = load_settings(
            _env_file=None,
            span_store=str(store),
            buildkite_api_token=TOKEN,
            buildkite_api_url=api.url,
            buildkite_org="acme",
            buildkite_state_db=tmp_path / "bk.db",
            otel_exporter_otlp_endpoint=otlp.endpoint,
        )
        since = datetime.now(UTC) - settings.buildkite_backfill
        await buildkite_poller(settings, since, ["app"], once=True)
        await otlp.wait_for(lambda s: s.name == "App")
    monkeypatch.setenv("SPAN_STORE", str(store))
    result = CliRunner().invoke(
        cli, ["stats", "--service", "buildkite", "--since", "1d", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert (row["group"], row["count"], row["errors"]) == ("App", 3, 1)
    assert row["max_ms"] == 600_000 and row["p50_ms"] == 120_000
    # The bot's own service has none of them.
    other = CliRunner().invoke(cli, ["stats", "--service", "chatops-bot", "--since", "1d"])
    assert other.exit_code == 0 and "no root spans" in other.stdout


WORKFLOWS = ("5a1b2c3d-0000-4000-8000-000000000001", "5a1b2c3d-0000-4000-8000-000000000002")


def recent_workflow(workflow_id: str, status: str = "success") -> dict[str, Any]:
    """A workflow-completed delivery for a 90 s workflow that ended a minute ago."""
    payload = circleci_hooks.workflow_completed(f"e-{workflow_id}", status=status)
    stopped = datetime.now(UTC) - timedelta(minutes=1)
    payload["workflow"].update(
        id=workflow_id,
        created_at=_iso(stopped - timedelta(seconds=90)),
        stopped_at=_iso(stopped),
    )
    return payload


async def test_received_circleci_workflows_are_in_stats_for_their_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "spans.db"
    async with OtlpReceiver() as otlp:
        settings = load_settings(
            _env_file=None,
            span_store=str(store),
            circleci_hook_secret=circleci_hooks.SECRET,
            circleci_otlp_endpoint=otlp.endpoint,
            circleci_state_db=tmp_path / "c.db",
        )
        receiver, sink = circleci_receiver(settings, {})
        assert sink is not None
        app = web.Application()
        app.add_routes(circleci_routes(receiver))
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            for payload in (recent_workflow(WORKFLOWS[0]), recent_workflow(WORKFLOWS[1], "failed")):
                body, signature = circleci_hooks.body_and_header(payload)
                async with (
                    aiohttp.ClientSession() as http,
                    http.post(
                        server.make_url("/hooks/circleci"),
                        data=body,
                        headers={"circleci-signature": signature},
                    ) as response,
                ):
                    assert response.status in (200, 202)
        finally:
            await server.close()
            await asyncio.to_thread(sink.close)
            receiver.close()
    monkeypatch.setenv("SPAN_STORE", str(store))
    result = CliRunner().invoke(
        cli, ["stats", "--service", "circleci", "--since", "1d", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert (row["group"], row["count"], row["errors"]) == ("build-test-deploy", 2, 1)
    assert row["max_ms"] == 90_000
