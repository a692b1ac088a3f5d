"""The receiver over real HTTP, exporting through the SDK to a local OTLP receiver."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.ci_env import circleci_otlp_headers
from bot.ci_wiring import circleci_receiver
from bot.config import load_settings
from bot.health import health_app
from telemetry import schema
from telemetry.pipeline import ids
from telemetry.pipeline.events import PipelineEvent
from telemetry.pipeline.export import BatchSink, to_ns
from telemetry.pipeline.webhook import CircleCIReceiver, circleci_routes
from tests.fakes import circleci_hooks as fake
from tests.fakes.otlp import OtlpReceiver, ReceivedSpan
from tests.helpers.sandbox_chat import until


class Harness:
    def __init__(
        self,
        server: TestServer,
        otlp: OtlpReceiver,
        announced: list[PipelineEvent],
        sink: BatchSink,
    ):
        self.server, self.otlp, self.announced, self.sink = server, otlp, announced, sink

    async def exported(self) -> list[ReceivedSpan]:
        """Every span received, once whatever the receiver had queued has been exported.

        The sink exports on a timer (500 ms); waiting for that flush, not asserting
        at once, is what shows a refused delivery was never queued.
        """
        assert await asyncio.to_thread(self.sink.flush)
        return list(self.otlp.spans)

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                self.server.make_url("/hooks/circleci"), data=body, headers=headers
            ) as response,
        ):
            return response.status, await response.text()

    async def signed(self, payload: dict[str, object]) -> tuple[int, str]:
        body, signature = fake.body_and_header(payload)
        return await self.post(
            body, {"circleci-signature": signature, "content-type": "application/json"}
        )


async def _serve(receiver: CircleCIReceiver) -> TestServer:
    app = health_app(lambda: True)
    app.add_routes(circleci_routes(receiver))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@asynccontextmanager
async def running_receiver(
    otlp: OtlpReceiver, state_db: Path, **settings_extra: object
) -> AsyncIterator[Harness]:
    """The receiver as the bot runs it, from start-up to shutdown, keeping state in ``state_db``."""
    announced: list[PipelineEvent] = []

    async def notifier(event: PipelineEvent) -> None:
        announced.append(event)

    settings = load_settings(
        _env_file=None,
        circleci_hook_secret=fake.SECRET,
        circleci_otlp_endpoint=otlp.endpoint,
        circleci_hook_service="circleci-test",
        circleci_state_db=state_db,
        **settings_extra,
    )
    env = {"CIRCLECI_OTLP_X_HONEYCOMB_TEAM": "team-key", "CIRCLECI_OTLP_ENDPOINT": "x"}
    receiver, sink = circleci_receiver(settings, env, notifier)
    assert sink is not None
    server = await _serve(receiver)
    try:
        yield Harness(server, otlp, announced, sink)
    finally:
        await server.close()
        await receiver.drain()
        receiver.close()
        # close() blocks while it flushes; the receiver it flushes to runs on this loop.
        await asyncio.to_thread(sink.close)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with OtlpReceiver() as otlp, running_receiver(otlp, tmp_path / "circleci.db") as h:
        yield h


async def test_workflow_and_job_arrive_as_one_trace_with_payload_ids_and_times(
    harness: Harness,
) -> None:
    assert (await harness.signed(fake.job_completed()))[0] == 202
    assert (await harness.signed(fake.workflow_completed()))[0] == 202
    spans = await harness.otlp.wait_for(lambda s: s.name == "build-test-deploy")
    await harness.otlp.wait_for(lambda s: s.name == "test")
    by_name = {span.name: span for span in harness.otlp.spans}
    root, job = by_name["build-test-deploy"], by_name["test"]
    assert root.trace_id == job.trace_id == fake.WORKFLOW_ID.replace("-", "")
    assert root.span_id == f"{ids.root_span_id(fake.WORKFLOW_ID):016x}"
    assert root.parent_span_id == ""
    assert job.parent_span_id == root.span_id
    assert job.span_id == f"{ids.job_span_id(fake.JOB_ID):016x}"
    assert root.start_ns == to_ns("2021-09-01T22:49:03.616Z")
    assert job.end_ns == to_ns("2021-09-01T22:49:29.750Z")
    assert job.status_code == 2  # ERROR: the job failed
    assert root.resource["service.name"] == "circleci-test"
    assert root.attributes[schema.VCS_REF_HEAD_NAME] == "main"
    assert spans
    assert harness.otlp.headers[0]["x-honeycomb-team"] == "team-key"


async def test_finished_workflow_is_announced(harness: Harness) -> None:
    await harness.signed(fake.workflow_completed(status="failed"))
    for _ in range(100):
        if harness.announced:
            break
        await asyncio.sleep(0.02)
    [event] = harness.announced
    assert (event.result, event.system, event.branch) == ("failure", "circleci", "main")


async def test_redelivery_is_exported_once(harness: Harness) -> None:
    payload = fake.workflow_completed()
    assert (await harness.signed(payload))[0] == 202
    status, text = await harness.signed(payload)
    assert status == 200 and "duplicate" in text
    assert [s.name for s in await harness.exported()] == ["build-test-deploy"]


async def test_a_delivery_replayed_after_a_restart_is_not_exported_or_announced_again(
    tmp_path: Path,
) -> None:
    payload = fake.workflow_completed(status="failed")
    async with OtlpReceiver() as otlp:
        async with running_receiver(otlp, tmp_path / "circleci.db") as before:
            assert (await before.signed(payload))[0] == 202
            await otlp.wait_for(lambda s: s.name == "build-test-deploy")
            await until(lambda: len(before.announced) == 1)
        async with running_receiver(otlp, tmp_path / "circleci.db") as after:
            status, text = await after.signed(payload)
            # A fresh delivery still goes through, and is exported after the replay was handled.
            assert (await after.signed(fake.ping()))[0] == 202
            await otlp.wait_for(lambda s: s.name == "circleci ping")
            assert after.announced == []
    assert (status, "duplicate" in text) == (200, True)
    assert [s.name for s in otlp.spans] == ["build-test-deploy", "circleci ping"]


@pytest.mark.parametrize("age", [timedelta(hours=2), timedelta(hours=-1)], ids=["old", "future"])
async def test_a_delivery_outside_the_window_is_refused_and_nothing_is_exported(
    harness: Harness, age: timedelta
) -> None:
    happened = (datetime.now(UTC) - age).isoformat()
    status, _ = await harness.signed(fake.workflow_completed(happened_at=happened))
    assert status == 400
    assert (await harness.signed(fake.ping()))[0] == 202
    await harness.otlp.wait_for(lambda s: s.name == "circleci ping")
    assert [s.name for s in harness.otlp.spans] == ["circleci ping"]
    assert harness.announced == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"circleci-signature": "v1=" + "0" * 64},
        {"circleci-signature": "v1=zz"},
        {"circleci-signature": "garbage"},
    ],
    ids=["missing", "wrong", "malformed-hex", "no-entry"],
)
async def test_bad_signature_is_401_and_exports_nothing(
    harness: Harness, headers: dict[str, str]
) -> None:
    body, _ = fake.body_and_header(fake.workflow_completed())
    assert (await harness.post(body, headers))[0] == 401
    assert await harness.exported() == []
    # The same body, signed, would have been exported by that flush.
    assert (await harness.signed(fake.workflow_completed()))[0] == 202
    assert [s.name for s in await harness.exported()] == ["build-test-deploy"]


async def test_signed_garbage_is_400_not_a_crash(harness: Harness) -> None:
    body = b"{not json"
    from telemetry.pipeline.circleci import sign

    status, _ = await harness.post(body, {"circleci-signature": sign(fake.SECRET.encode(), body)})
    assert status == 400


async def test_oversized_body_is_413(harness: Harness) -> None:
    assert (await harness.post(b"x" * (300 * 1024), {}))[0] == 413


async def test_ping_is_accepted(harness: Harness) -> None:
    status, text = await harness.signed(fake.ping())
    assert status == 202 and "ping" in text


async def test_traceparent_route_points_at_the_job_span(harness: Harness) -> None:
    url = harness.server.make_url(f"/traceparent/{fake.WORKFLOW_ID}/{fake.JOB_ID}")
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
        bad = await session.get(harness.server.make_url("/traceparent/x/y"))
    trace_id = fake.WORKFLOW_ID.replace("-", "")
    assert text == f"export TRACEPARENT=00-{trace_id}-{ids.job_span_id(fake.JOB_ID):016x}-01\n"
    assert bad.status == 400


async def test_circleci_hook_scheme_setting_changes_job_and_workflow_span_ids(
    tmp_path: Path,
) -> None:
    async with (
        OtlpReceiver() as otlp,
        running_receiver(otlp, tmp_path / "c.db", circleci_id_scheme="circleci-hook") as h,
    ):
        assert (await h.signed(fake.job_completed()))[0] == 202
        [job] = await otlp.wait_for(lambda s: s.name == "test")
        url = h.server.make_url(f"/traceparent/{fake.WORKFLOW_ID}/{fake.JOB_ID}")
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            text = await response.text()
    assert job.span_id == fake.JOB_ID.replace("-", "")[:16]
    assert job.parent_span_id == fake.WORKFLOW_ID.replace("-", "")[:16]
    assert job.span_id in text


async def test_without_secret_the_route_answers_503_and_says_why_once(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    settings = load_settings(
        circleci_otlp_endpoint="http://127.0.0.1:9", circleci_state_db=tmp_path / "c.db"
    )
    receiver, sink = circleci_receiver(settings, {})
    server = await _serve(receiver)
    try:
        body, signature = fake.body_and_header(fake.ping())
        with caplog.at_level(logging.WARNING):
            async with aiohttp.ClientSession() as session:
                for _ in range(2):
                    async with session.post(
                        server.make_url("/hooks/circleci"),
                        data=body,
                        headers={"circleci-signature": signature},
                    ) as r:
                        assert r.status == 503
    finally:
        await server.close()
        if sink:
            sink.close(0.5)
    reasons = [r.getMessage() for r in caplog.records if "CIRCLECI_HOOK_SECRET" in r.getMessage()]
    assert len(reasons) == 1
    assert fake.SECRET not in caplog.text


def test_circleci_otlp_variables_become_headers() -> None:
    env = {
        "CIRCLECI_OTLP_ENDPOINT": "https://api.honeycomb.io",
        "CIRCLECI_OTLP_X_HONEYCOMB_TEAM": "k",
        "CIRCLECI_OTLP_X_HONEYCOMB_DATASET": "ci",
        "CIRCLECI_HOOK_SECRET": "no",
    }
    assert circleci_otlp_headers(env) == {"x-honeycomb-team": "k", "x-honeycomb-dataset": "ci"}


def test_routes_mount_on_any_app() -> None:
    app = web.Application()
    app.add_routes(circleci_routes(CircleCIReceiver(None, None)))
    paths = {r.resource.canonical for r in app.router.routes() if r.resource}
    assert {"/hooks/circleci", "/traceparent/{workflow_id}/{job_id}"} <= paths
