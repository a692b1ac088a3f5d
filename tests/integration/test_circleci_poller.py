"""The CircleCI cancellation poller against the fake CircleCI API v2 and a local OTLP receiver."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from telemetry import schema
from telemetry.pipeline import ids
from telemetry.pipeline.circleci_api import CircleCIAuthError, CircleCIClient
from telemetry.pipeline.circleci_poller import CircleCIPoller
from telemetry.pipeline.export import (
    export_now,
    otlp_exporter,
    pipeline_resource,
    to_readable,
)
from telemetry.pipeline.seen import SeenStore
from tests.fakes.circleci_api import TOKEN, FakeCircleCI, cancelled_run, failed_run, passed_run
from tests.fakes.otlp import OtlpReceiver
from tests.helpers.poller_rig import PollerRig
from tests.helpers.sandbox_chat import until

SLUG = "gh/acme/app"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class Rig(PollerRig[FakeCircleCI]):
    def poller(
        self,
        session: aiohttp.ClientSession,
        store: SeenStore,
        *,
        token: str = TOKEN,
        scheme: ids.CircleIdScheme = "chatops",
        projects: tuple[str, ...] = (SLUG,),
        max_attempts: int = 6,
        announce_after: datetime | None = None,
        endpoint: str | None = None,
    ) -> CircleCIPoller:
        client = CircleCIClient(
            session, self.api.url, token, sleep=self.sleep, max_attempts=max_attempts
        )
        return CircleCIPoller(
            client,
            store,
            self.export("ci", endpoint),
            projects=projects,
            lookback=timedelta(days=1),
            circle_ids=ids.CircleIds(scheme),
            notifier=self.notifier,
            announce_after=announce_after,
            clock=lambda: NOW,
        )

    async def run_once(self, **options: object) -> int:
        store = SeenStore(self.tmp / "circleci-poll.db")
        try:
            async with aiohttp.ClientSession() as session:
                return await self.poller(session, store, **options).poll_once()  # type: ignore[arg-type]
        finally:
            store.close()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with FakeCircleCI(page_size=2) as api, OtlpReceiver() as otlp:
        yield Rig(api, otlp, tmp_path)


def trace_of(workflow: dict[str, object]) -> str:
    return str(workflow["id"]).replace("-", "")


async def test_a_cancelled_workflow_is_sent_once_and_a_passed_one_is_left_alone(rig: Rig) -> None:
    cancelled = cancelled_run(SLUG, 7, NOW - timedelta(hours=2))
    passed = passed_run(SLUG, 8, NOW - timedelta(hours=1))
    older = [passed_run(SLUG, n, NOW - timedelta(hours=3, minutes=n)) for n in range(1, 5)]
    for run in (cancelled, passed, *older):
        rig.api.add(*run)

    assert await rig.run_once() == 1
    assert {s.trace_id for s in rig.otlp.spans} == {trace_of(cancelled[1])}
    assert sorted(s.name for s in rig.otlp.spans) == ["build-test-deploy", "deploy", "test"]
    (root,) = [s for s in rig.otlp.spans if not s.parent_span_id]
    assert root.attributes[schema.CICD_PIPELINE_RESULT] == "cancellation"
    assert root.resource["service.name"] == "ci"  # where `ci finish` sends its roots
    # Paged (2 per page) and only the cancelled workflow's jobs were asked for.
    assert any("page-token=page-2" in r for r in rig.api.requests)
    assert [r for r in rig.api.requests if r.endswith("/job")] == [
        f"/api/v2/workflow/{cancelled[1]['id']}/job"
    ]

    # A restart (a new store on the same file): nothing is sent twice, nothing re-asked.
    before, asked = len(rig.otlp.spans), len(rig.api.requests)
    assert await rig.run_once() == 0
    assert len(rig.otlp.spans) == before
    assert not [r for r in rig.api.requests[asked:] if "/workflow" in r]

    # A cancellation after that is sent.
    later = cancelled_run(SLUG, 9, NOW - timedelta(minutes=5))
    rig.api.add(*later)
    assert await rig.run_once() == 1
    assert trace_of(later[1]) in {s.trace_id for s in rig.otlp.spans}


async def test_a_failure_that_blocked_the_last_job_is_sent_and_one_whose_last_job_ran_is_not(
    rig: Rig,
) -> None:
    blocked = failed_run(SLUG, 20, NOW - timedelta(hours=2))
    ran = failed_run(SLUG, 21, NOW - timedelta(hours=1), last_job_ran=True)
    for run in (blocked, ran):
        rig.api.add(*run)

    assert await rig.run_once() == 1
    assert {s.trace_id for s in rig.otlp.spans} == {trace_of(blocked[1])}
    assert sorted(s.name for s in rig.otlp.spans) == ["build-deploy", "deploy"]
    (root,) = [s for s in rig.otlp.spans if not s.parent_span_id]
    assert root.attributes[schema.CICD_PIPELINE_RESULT] == "failure"

    # Both workflows' jobs were asked once; neither is asked again.
    asked = len(rig.api.requests)
    assert await rig.run_once() == 0
    assert not [r for r in rig.api.requests[asked:] if r.endswith("/job")]


async def test_pipelines_older_than_the_look_back_are_not_asked_about(rig: Rig) -> None:
    rig.api.add(*cancelled_run(SLUG, 1, NOW - timedelta(days=2)))
    assert await rig.run_once() == 0
    assert not [r for r in rig.api.requests if "/workflow" in r]


@pytest.mark.parametrize("scheme", ids.CIRCLE_ID_SCHEMES)
async def test_the_steps_of_the_cancelled_job_find_their_parent(
    rig: Rig, scheme: ids.CircleIdScheme
) -> None:
    from bot.ci_env import detect_run
    from telemetry.pipeline.steps import run_step

    run, flow, jobs = cancelled_run(SLUG, 7, NOW - timedelta(hours=1))
    rig.api.add(run, flow, jobs)
    test_job = next(job for job in jobs if job["name"] == "test")
    env = {"CIRCLE_WORKFLOW_ID": flow["id"], "CIRCLE_WORKFLOW_JOB_ID": test_job["id"]}
    step = run_step(detect_run(env, ids.CircleIds(scheme)), "pytest", ["true"], env).span
    exporter = otlp_exporter(rig.otlp.endpoint, {}, 2.0)
    readable = [to_readable(step, pipeline_resource("ci"))]
    assert await asyncio.to_thread(export_now, exporter, readable, 3.0)

    assert await rig.run_once(scheme=scheme) == 1
    sent = {s.span_id: s for s in rig.otlp.spans}
    (received_step,) = [s for s in rig.otlp.spans if s.name == "pytest"]
    parent = sent[received_step.parent_span_id]  # KeyError: the step still has no parent
    assert parent.name == "test" and parent.attributes[schema.CI_STATUS] == "canceled"
    assert not sent[parent.parent_span_id].parent_span_id  # and the job sits under the root


async def test_rate_limit_and_server_errors_are_retried_with_back_off(rig: Rig) -> None:
    rig.api.add(*cancelled_run(SLUG, 7, NOW - timedelta(hours=1)))
    rig.api.rate_limit_next, rig.api.fail_next = 1, 2
    assert await rig.run_once() == 1
    assert rig.sleeps == [2.5, 2.0, 4.0]  # Retry-After 2 s plus a margin, then doubling


async def test_a_dead_collector_records_nothing_and_the_next_cycle_sends_it(rig: Rig) -> None:
    rig.api.add(*cancelled_run(SLUG, 7, NOW - timedelta(hours=1)))
    assert await rig.run_once(endpoint="http://127.0.0.1:9") == 0
    assert await rig.run_once() == 1


async def test_an_outage_costs_cycles_with_one_warning_and_the_poller_recovers(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="telemetry.pipeline")
    rig.api.add(*cancelled_run(SLUG, 7, NOW - timedelta(hours=1)))
    rig.api.fail_next = 1_000_000
    store = SeenStore(rig.tmp / "poll.db")
    try:
        async with aiohttp.ClientSession() as session:
            poller = rig.poller(session, store, max_attempts=2)
            running = asyncio.create_task(poller.run(0.01))
            await until(lambda: len(rig.api.requests) >= 6)  # three failed cycles
            rig.api.fail_next = 0
            await until(lambda: len(rig.otlp.spans) == 3)
            poller.stop.set()
            await asyncio.wait_for(running, timeout=1.0)
    finally:
        store.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        "CircleCI poller: CircleCI unavailable after 2 attempts; trying again every 0s"
    ]


async def test_a_refused_token_is_one_clear_error_without_the_token(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.api.add(*cancelled_run(SLUG, 7, NOW - timedelta(hours=1)))
    with pytest.raises(CircleCIAuthError, match=r"answered 401.*CIRCLECI_TOKEN"):
        await rig.run_once(token="wrong-token-value")
    assert len(rig.api.requests) == 1  # not retried
    assert "wrong-token-value" not in caplog.text


async def test_an_unknown_project_is_one_warning_and_the_others_are_polled(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.api.add(*cancelled_run(SLUG, 7, NOW - timedelta(hours=1)))
    store = SeenStore(rig.tmp / "poll.db")
    try:
        async with aiohttp.ClientSession() as session:
            poller = rig.poller(session, store, projects=("gh/acme/gone", SLUG))
            assert await poller.poll_once() == 1
            assert await poller.poll_once() == 0  # a second cycle: no second warning
    finally:
        store.close()
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.startswith("CircleCI project gh/acme/gone skipped: CircleCI answered 404")


async def test_the_token_never_follows_a_redirect_to_another_host(rig: Rig) -> None:
    elsewhere: list[str] = []

    async def record(request: web.Request) -> web.Response:
        elsewhere.append(request.headers.get("Circle-Token", "(none)"))
        return web.json_response({"items": []})

    app = web.Application()
    app.router.add_get("/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        rig.api.project_known(SLUG)
        rig.api.redirect_to = f"http://localhost:{port}/api/v2/project/gh/acme/app/pipeline"
        assert await rig.run_once() == 0
    finally:
        await runner.cleanup()
    assert elsewhere == []
    assert rig.api.tokens_seen == [TOKEN]


async def test_only_cancellations_after_start_up_are_announced(rig: Rig) -> None:
    rig.api.add(*cancelled_run(SLUG, 7, NOW - timedelta(hours=2)))
    rig.api.add(*cancelled_run(SLUG, 8, NOW - timedelta(minutes=1)))
    assert await rig.run_once(announce_after=NOW - timedelta(minutes=2)) == 2
    (event,) = rig.announced
    assert event.result == "cancellation" and event.system == "circleci"
    assert event.url is not None and event.url.startswith(
        "https://app.circleci.com/pipelines/gh/acme/app/8/workflows/"
    )
