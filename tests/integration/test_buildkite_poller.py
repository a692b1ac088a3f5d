"""The poller against a fake BuildKite API, exporting to a local OTLP receiver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from telemetry import schema
from telemetry.pipeline.buildkite import BuildkiteClient, BuildkiteError
from telemetry.pipeline.cursor import CursorStore
from telemetry.pipeline.export import (
    PipelineSpan,
    export_awaitable,
    otlp_exporter,
    pipeline_resource,
    to_readable,
)
from telemetry.pipeline.poller import BuildkitePoller
from tests.fakes.buildkite_api import TOKEN, FakeBuildkite, build
from tests.fakes.otlp import OtlpReceiver
from tests.helpers.poller_rig import PollerRig
from tests.helpers.sandbox_chat import until

SINCE = datetime(2024, 1, 1, tzinfo=UTC)


class Rig(PollerRig[FakeBuildkite]):
    async def run_once(
        self,
        *,
        pipelines: tuple[str, ...] = ("app",),
        token: str = TOKEN,
        announce_after: datetime | None = None,
        endpoint: str | None = None,
    ) -> int:
        store = CursorStore(self.tmp / "bk.db")
        try:
            async with aiohttp.ClientSession() as session:
                client = BuildkiteClient(
                    session, self.api.url, token, "acme", sleep=self.sleep, per_page=2
                )
                poller = BuildkitePoller(
                    client,
                    store,
                    self.export("buildkite", endpoint),
                    org="acme",
                    pipelines=pipelines,
                    since=SINCE,
                    notifier=self.notifier,
                    announce_after=announce_after,
                )
                return await poller.poll_once()
        finally:
            store.close()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with FakeBuildkite() as api, OtlpReceiver() as otlp:
        api.builds = [build(n, f"2024-05-0{n}T12:00:00.000Z") for n in range(1, 6)]
        yield Rig(api, otlp, tmp_path)


async def test_backfill_follows_pagination_and_exports_each_build_once(rig: Rig) -> None:
    assert await rig.run_once() == 5
    assert sum("page=3" in r for r in rig.api.requests) == 1  # 5 builds, 2 per page
    roots = [s for s in rig.otlp.spans if s.parent_span_id == ""]
    assert sorted(s.trace_id for s in roots) == sorted(
        b["id"].replace("-", "") for b in rig.api.builds
    )
    assert len(rig.otlp.spans) == 15  # root, job and queue wait per build
    assert await rig.run_once() == 0  # the cursor and the exported table hold
    rig.api.builds.append(build(6, "2024-05-07T12:00:00.000Z"))
    assert await rig.run_once() == 1
    assert "finished_from=2024-05-05T12" in rig.api.requests[-1]


async def test_rate_limit_and_server_errors_are_retried_with_back_off(rig: Rig) -> None:
    rig.api.rate_limit_next, rig.api.fail_next = 1, 2
    assert await rig.run_once() == 5
    assert rig.sleeps[0] == 2.5  # RateLimit-Reset 2 s, plus a margin
    assert rig.sleeps[1:] == [2.0, 4.0]


async def test_dead_collector_keeps_the_cursor(rig: Rig) -> None:
    assert await rig.run_once(endpoint="http://127.0.0.1:9") == 0
    assert await rig.run_once() == 5


async def test_bad_token_is_one_clear_error(rig: Rig) -> None:
    with pytest.raises(BuildkiteError, match="401"):
        await rig.run_once(token="wrong")


async def test_backfill_is_not_announced_but_new_builds_are(rig: Rig) -> None:
    await rig.run_once(announce_after=datetime(2024, 5, 5, tzinfo=UTC))
    assert [e.pipeline for e in rig.announced] == ["App"]
    assert rig.announced[0].url == "https://buildkite.com/acme/app/builds/5"


async def test_job_and_wait_spans_carry_payload_times(rig: Rig) -> None:
    await rig.run_once()
    wait = next(s for s in rig.otlp.spans if s.name.startswith("queued:"))
    assert wait.end_ns - wait.start_ns == 3_250_000_000
    assert wait.attributes[schema.CI_QUEUE_WAIT_MS] == 3250.0


@pytest.mark.parametrize("buildkite_failing", [True, False], ids=["buildkite", "collector"])
async def test_stop_cuts_a_stuck_cycle_short_and_loses_no_build(
    rig: Rig, buildkite_failing: bool
) -> None:
    """SIGTERM must not wait out BuildKite's back-off, nor a collector that never answers."""
    if buildkite_failing:
        rig.api.fail_next = 1_000_000
    else:
        rig.otlp.delay = 60.0
    exporter = otlp_exporter(rig.otlp.endpoint, {}, 30.0)
    resource = pipeline_resource("buildkite")

    async def export(spans: list[PipelineSpan]) -> bool:
        return await export_awaitable(exporter, [to_readable(s, resource) for s in spans], 30.0)

    def stuck() -> bool:
        return bool(rig.api.requests) if buildkite_failing else rig.otlp.requests > 0

    store = CursorStore(rig.tmp / "bk.db")
    try:
        async with aiohttp.ClientSession() as session:
            client = BuildkiteClient(session, rig.api.url, TOKEN, "acme")  # real back-off
            poller = BuildkitePoller(
                client, store, export, org="acme", pipelines=["app"], since=SINCE
            )
            running = asyncio.create_task(poller.run(60.0))
            await until(stuck)
            poller.stop.set()
            await asyncio.wait_for(running, timeout=1.0)
        assert store.cursor("acme", "app") is None  # nothing recorded: exported again next time
    finally:
        store.close()
