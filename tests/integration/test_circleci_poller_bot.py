"""The CircleCI cancellation poller inside the bot, and as ``chatops ci circleci-export``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from bot.ci_services import CiServices
from bot.client import ChatOpsBot
from bot.config import Settings
from bot.harness import connected_bot
from bot.sandbox import FakeDiscord
from telemetry import schema
from tests.fakes.circleci_api import TOKEN, FakeCircleCI, cancelled_run
from tests.fakes.otlp import OtlpReceiver
from tests.helpers.chatops_process import run_ci
from tests.helpers.sandbox_chat import ask, until

SLUG = "gh/acme/app"


def poller_running() -> bool:
    return any(t.get_name() == "circleci-poller" for t in asyncio.all_tasks())


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[FakeCircleCI, OtlpReceiver]]:
    async with FakeCircleCI() as api, OtlpReceiver() as otlp:
        yield api, otlp


def poll_settings(
    settings: Settings, api: FakeCircleCI, otlp: OtlpReceiver, tmp: Path, **extra: object
) -> Settings:
    return settings.model_copy(
        update={
            "circleci_token": SecretStr(TOKEN),
            "circleci_api_url": api.url,
            "circleci_projects": [SLUG],
            "circleci_poll_state_db": tmp / "circleci-poll.db",
            "circleci_poll_interval_s": 60.0,
            "otel_exporter_otlp_endpoint": otlp.endpoint,
            **extra,
        }
    )


@pytest.fixture
async def polling_bot(
    settings: Settings,
    fake: FakeDiscord,
    world: tuple[FakeCircleCI, OtlpReceiver],
    tmp_path: Path,
) -> AsyncIterator[tuple[ChatOpsBot, CiServices]]:
    api, otlp = world
    configured = poll_settings(
        settings, api, otlp, tmp_path, ci_announce_channel_id=fake.channel_id
    )
    async with connected_bot(configured, fake, guild_ready_timeout=0.05) as bot:
        services = CiServices(configured, bot.announce_pipeline)
        try:
            yield bot, services
        finally:
            await services.close()


async def test_in_the_bot_a_cancellation_is_sent_and_announced(
    polling_bot: tuple[ChatOpsBot, CiServices],
    world: tuple[FakeCircleCI, OtlpReceiver],
    fake: FakeDiscord,
    spans: InMemorySpanExporter,
) -> None:
    api, otlp = world
    run, flow, jobs = cancelled_run(SLUG, 7, datetime.now(UTC) - timedelta(seconds=5))
    api.add(run, flow, jobs)
    _, services = polling_bot
    services.start()
    trace = flow["id"].replace("-", "")
    await until(lambda: len([s for s in otlp.spans if s.trace_id == trace]) == 3)
    await until(lambda: any(m.get("embeds") for m in fake.bot_messages))
    (message,) = [m for m in fake.bot_messages if m.get("embeds")]
    (embed,) = message["embeds"]
    assert "cancellation" in embed["title"] and trace in embed["footer"]["text"]
    assert not fake.would_ping(message)
    (root,) = [s for s in otlp.spans if s.trace_id == trace and not s.parent_span_id]
    assert root.attributes[schema.CICD_PIPELINE_RESULT] == "cancellation"
    # The token went to the API, and nowhere else: not in a span, here or at the collector.
    assert set(api.tokens_seen) == {TOKEN}
    assert TOKEN.encode() not in b"".join(otlp.bodies)
    assert TOKEN not in repr([(s.name, s.attributes) for s in spans.get_finished_spans()])


async def test_a_circleci_outage_degrades_only_the_poller(
    polling_bot: tuple[ChatOpsBot, CiServices],
    world: tuple[FakeCircleCI, OtlpReceiver],
    fake: FakeDiscord,
) -> None:
    api, _ = world
    api.fail_next = 1_000_000
    _, services = polling_bot
    services.start()
    await until(lambda: len(api.requests) >= 2)  # backing off, in the background
    _, answer = await ask(fake, "!ping")
    assert answer["content"].startswith("Pong")
    started = asyncio.get_running_loop().time()
    await services.close()  # within its bound, back-off or not
    assert asyncio.get_running_loop().time() - started < 2.5
    assert not poller_running()


async def test_a_refused_token_is_one_log_line_and_never_logged(
    settings: Settings,
    world: tuple[FakeCircleCI, OtlpReceiver],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, otlp = world
    caplog.set_level(logging.INFO)
    configured = poll_settings(settings, api, otlp, tmp_path)
    configured = configured.model_copy(update={"circleci_token": SecretStr("wrong-secret-token")})
    services = CiServices(configured, _no_announcement)
    services.start()
    await until(lambda: "poller stopped" in caplog.text)
    await until(lambda: not poller_running())
    await services.close()
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert lines == [
        "the CircleCI poller stopped: CircleCI answered 401 for /project/gh/acme/app/pipeline: "
        "check CIRCLECI_TOKEN (a personal API token of a user who can see the project)"
    ]
    assert "wrong-secret-token" not in caplog.text
    assert api.requests == ["/api/v2/project/gh/acme/app/pipeline"]  # asked once, not retried


@pytest.mark.parametrize(
    "webhook",
    [{"circleci_hook_secret": SecretStr("hook-secret")}, {"ci_webhook_spans": True}],
    ids=["hook-secret", "ci-webhook-spans"],
)
async def test_with_the_webhook_the_poller_stays_off_and_says_why(
    settings: Settings,
    world: tuple[FakeCircleCI, OtlpReceiver],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    webhook: dict[str, object],
) -> None:
    api, otlp = world
    caplog.set_level(logging.INFO)
    services = CiServices(poll_settings(settings, api, otlp, tmp_path, **webhook), _no_announcement)
    services.start()
    assert not poller_running()
    assert "CircleCI cancellation poller not started: the CircleCI webhook is configured" in (
        caplog.text
    )
    await services.close()
    assert api.requests == []


async def _no_announcement(*_args: object) -> None:
    return None


def _ci_env(api: FakeCircleCI, otlp: OtlpReceiver, tmp: Path, **extra: str) -> dict[str, str]:
    return {
        "CIRCLECI_TOKEN": TOKEN,
        "CIRCLECI_API_URL": api.url,
        "CIRCLECI_PROJECTS": SLUG,
        "CIRCLECI_POLL_STATE_DB": str(tmp / "circleci-poll.db"),
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
        "SPAN_STORE": "off",
        **extra,
    }


@pytest.mark.parametrize("scheme", ["chatops", "circleci-hook"])
async def test_the_cli_joins_steps_sent_by_ci_step_to_the_cancelled_job(
    world: tuple[FakeCircleCI, OtlpReceiver], tmp_path: Path, scheme: str
) -> None:
    """End to end: a job's `ci step` ran, the workflow was cancelled, the export adds the rest."""
    api, otlp = world
    run, flow, jobs = cancelled_run(SLUG, 7, datetime.now(UTC) - timedelta(minutes=1))
    api.add(run, flow, jobs)
    test_job = next(job for job in jobs if job["name"] == "test")
    step_env = {
        "CIRCLE_WORKFLOW_ID": flow["id"],
        "CIRCLE_WORKFLOW_JOB_ID": test_job["id"],
        "CIRCLECI_ID_SCHEME": scheme,
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
    }
    code, _, err = await run_ci(tmp_path, step_env, "step", "pytest", "--", "true")
    assert code == 0, err
    env = _ci_env(api, otlp, tmp_path, CIRCLECI_ID_SCHEME=scheme)
    code, _, err = await run_ci(tmp_path, env, "circleci-export", "--once")
    assert code == 0, err
    sent = {s.span_id: s for s in otlp.spans}
    (step,) = [s for s in otlp.spans if s.name == "pytest"]
    job = sent[step.parent_span_id]
    assert job.name == "test" and sent[job.parent_span_id].name == "build-test-deploy"
    # A second run (a cron job's next call) sends nothing again.
    before = len(otlp.spans)
    code, _, err = await run_ci(tmp_path, env, "circleci-export", "--once")
    assert code == 0, err
    assert len(otlp.spans) == before


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {"CIRCLECI_TOKEN": "wrong-secret-token"},
            "chatops: CircleCI answered 401 for /project/gh/acme/app/pipeline: check CIRCLECI_",
        ),
        ({"CI_WEBHOOK_SPANS": "true"}, "chatops: not polling CircleCI: the CircleCI webhook"),
        ({"CIRCLECI_PROJECTS": "acme/app"}, "chatops: invalid CIRCLECI_PROJECTS"),
    ],
    ids=["bad-token", "webhook", "bad-slug"],
)
async def test_the_cli_refuses_in_one_line_and_exit_2(
    world: tuple[FakeCircleCI, OtlpReceiver], tmp_path: Path, extra: dict[str, str], expected: str
) -> None:
    api, otlp = world
    api.project_known(SLUG)
    code, out, err = await run_ci(
        tmp_path, _ci_env(api, otlp, tmp_path, **extra), "circleci-export", "--once"
    )
    assert code == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), err
    assert b"wrong-secret-token" not in out + err
