"""``chatops ci buildkite-export``: backfill, then follow finished builds.

Each cycle asks, per pipeline, for builds finished since that pipeline's cursor,
oldest first, and exports each build as one request; only an accepted export
moves the cursor. A dead collector stops the cycle (retried next interval); a
BuildKite outage is retried with back-off inside the client. Stopping (SIGTERM,
SIGINT) cuts a cycle short at once, back-off and export included, and
interrupts the wait between cycles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from telemetry.pipeline.buildkite import FINISHED_STATES, BuildkiteClient, build_spans
from telemetry.pipeline.cursor import ALL_PIPELINES, CursorStore
from telemetry.pipeline.events import Notifier, notify_safely
from telemetry.pipeline.export import PipelineSpan

log = logging.getLogger(__name__)

Export = Callable[[list[PipelineSpan]], Awaitable[bool]]


class BuildkitePoller:
    def __init__(
        self,
        client: BuildkiteClient,
        store: CursorStore,
        export: Export,
        *,
        org: str,
        pipelines: Sequence[str],
        since: datetime,
        notifier: Notifier | None = None,
        announce_after: datetime | None = None,
    ) -> None:
        self._client = client
        self._store = store
        self._export = export
        self._org = org
        self._pipelines: list[str | None] = list(pipelines) or [None]
        self._since = since
        self._notifier = notifier
        self._announce_after = announce_after  # a backfill announces nothing
        self.stop = asyncio.Event()

    async def poll_once(self) -> int:
        """One cycle over every pipeline; returns how many builds were exported."""
        exported = 0
        for pipeline in self._pipelines:
            if self.stop.is_set():
                break
            exported += await self._poll_pipeline(pipeline)
        return exported

    async def _poll_pipeline(self, pipeline: str | None) -> int:
        key = pipeline or ALL_PIPELINES
        cursor = self._store.cursor(self._org, key) or self._since
        builds = [
            build
            async for build in self._client.finished_builds(pipeline, cursor)
            if build.get("state") in FINISHED_STATES and isinstance(build.get("finished_at"), str)
        ]
        builds.sort(key=lambda build: str(build["finished_at"]))
        count = 0
        for build in builds:
            if self.stop.is_set():
                break
            build_id = str(build.get("id"))
            translated = build_spans(build)
            if translated is None or self._store.exported(build_id):
                continue
            spans, event = translated
            if not await self._export(spans):
                log.warning("span export failed; BuildKite cursor for %s stays put", key)
                break
            finished = datetime.fromisoformat(str(build["finished_at"]).replace("Z", "+00:00"))
            self._store.record(self._org, key, build_id, finished)
            count += 1
            if self._announce_after is not None and finished >= self._announce_after:
                await notify_safely(self._notifier, event)
        return count

    async def run(self, interval_s: float, *, once: bool = False) -> None:
        """Poll until ``stop`` is set (or after one cycle with ``once``)."""
        while not self.stop.is_set():
            count = await self._unless_stopped(self.poll_once())
            if count is None:
                return
            log.info("BuildKite: exported %d build(s)", count)
            if once:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=interval_s)

    async def _unless_stopped(self, cycle: Awaitable[int]) -> int | None:
        return await unless_stopped(self.stop, cycle)


async def unless_stopped(stop: asyncio.Event, cycle: Awaitable[int]) -> int | None:
    """The cycle's count, or None if ``stop`` was set first (the cycle is then cancelled).

    Waiting for the cycle instead could take minutes (the CI API's back-off, a
    collector that does not answer), while the platform kills the process 10 s
    after SIGTERM. Nothing is lost by cancelling: a run is recorded only after
    its export was accepted, so one cut short is exported again next time, with
    the same ids. Shared by the BuildKite and CircleCI pollers.
    """
    task = asyncio.ensure_future(cycle)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
    return None if task.cancelled() else task.result()
