"""``chatops ci circleci-export``: the spans of CircleCI workflows nobody else sends.

Each cycle lists, per project, the pipelines created within the look-back
(newest first, stopping at the first older one), skips those already settled,
asks each remaining pipeline for its workflows and, for every newly cancelled,
failed or errored one, its jobs; then exports the workflow's root span and the
spans of the jobs that never ran ``ci finish --job``
(``circleci_api.unsent_workflow_spans``).

No duplicates: a workflow is exported only if its last job cannot have run ``ci
finish --result`` (it was cancelled, or a terminal job was left ``blocked`` by a
failure upstream; any other ending ran it, which sent the root), only its jobs
that did not end ``success``/``failed`` (those ran ``ci finish --job``), and a workflow is recorded
(``seen``) only after the collector accepted it, so a restart or a dead collector
re-sends nothing already accepted and loses nothing. With the webhook configured,
the webhook reports cancellations itself and this poller is not started.

Failure modes: a refused token (401/403) stops the poller with one line; a
project CircleCI does not know (404) is one warning and the others go on; an
outage or a 429 backs off inside the client and, if it lasts, costs the cycle
(one warning, tried again next interval): only the poller degrades.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from telemetry.pipeline import ids
from telemetry.pipeline.circleci_api import (
    SETTLED_WORKFLOW_STATES,
    UNFINISHED_WORKFLOW_STATES,
    CircleCIAuthError,
    CircleCIClient,
    CircleCIError,
    CircleCIUnavailable,
    created_at,
    unsent_workflow_spans,
)
from telemetry.pipeline.events import Notifier, notify_safely
from telemetry.pipeline.export import PipelineSpan, to_ns
from telemetry.pipeline.poller import unless_stopped
from telemetry.pipeline.seen import SeenStore

log = logging.getLogger(__name__)

Export = Callable[[list[PipelineSpan]], Awaitable[bool]]
Clock = Callable[[], datetime]
#: A pipeline with no workflow this long after its creation will not get one.
EMPTY_PIPELINE_SETTLES_AFTER = timedelta(hours=1)
#: Our clock and CircleCI's may differ: keys are pruned this much after the look-back.
PRUNE_MARGIN = timedelta(hours=1)


def _now() -> datetime:
    return datetime.now(UTC)


class CircleCIPoller:
    def __init__(
        self,
        client: CircleCIClient,
        store: SeenStore,
        export: Export,
        *,
        projects: Sequence[str],
        lookback: timedelta,
        circle_ids: ids.CircleIds,
        notifier: Notifier | None = None,
        announce_after: datetime | None = None,
        clock: Clock = _now,
    ) -> None:
        self._client = client
        self._store = store
        self._export = export
        self._projects = list(projects)
        self._lookback = lookback
        self._ids = circle_ids
        self._notifier = notifier
        self._announce_after = announce_after  # cancellations before start-up: no announcement
        self._clock = clock
        self._warned: set[str] = set()
        self.stop = asyncio.Event()

    async def poll_once(self) -> int:
        """One cycle over every project; returns how many cancelled workflows were exported."""
        horizon = self._clock() - self._lookback
        self._store.forget_before(horizon - PRUNE_MARGIN)
        exported = 0
        for slug in self._projects:
            if self.stop.is_set():
                break
            try:
                exported += await self._poll_project(slug, horizon)
            except (CircleCIUnavailable, CircleCIAuthError):
                raise
            except CircleCIError as exc:
                if slug not in self._warned:  # one line per project, not one per cycle
                    self._warned.add(slug)
                    log.warning("CircleCI project %s skipped: %s", slug, exc)
        return exported

    async def _poll_project(self, slug: str, horizon: datetime) -> int:
        count = 0
        async with contextlib.aclosing(self._client.pipelines(slug)) as pipelines:
            async for pipeline in pipelines:
                created = created_at(pipeline)
                if created is None:
                    continue
                if created < horizon:
                    break  # newest first: everything after is older still
                pipeline_id = pipeline.get("id")
                if not isinstance(pipeline_id, str) or not ids.is_uuid(pipeline_id):
                    continue
                settled_key = f"pipeline:{pipeline_id}@{pipeline.get('updated_at')}"
                if self._store.seen(settled_key):
                    continue
                workflows = await self._client.workflows(pipeline_id)
                for workflow in workflows:
                    if self.stop.is_set():
                        return count
                    exported = await self._workflow(slug, pipeline, workflow, created)
                    if exported is None:
                        return count  # the collector refused: the cycle ends, nothing recorded
                    count += exported
                if _settled(pipeline, workflows, created, self._clock()):
                    self._store.record(settled_key, created)
        return count

    async def _workflow(
        self,
        slug: str,
        pipeline: Mapping[str, Any],
        workflow: Mapping[str, Any],
        created: datetime,
    ) -> int | None:
        """1 if an unfinished workflow was exported now, 0 if there was nothing to do, None
        if the export failed."""
        workflow_id = workflow.get("id")
        if (
            workflow.get("status") not in UNFINISHED_WORKFLOW_STATES
            or not isinstance(workflow_id, str)
            or not workflow.get("stopped_at")
        ):
            return 0
        key = f"workflow:{workflow_id}"
        if self._store.seen(key):
            return 0
        jobs = await self._client.jobs(workflow_id)
        translated = unsent_workflow_spans(slug, pipeline, workflow, jobs, self._ids)
        if translated is None:
            self._store.record(key, created)  # its last job sent the root: nothing to ask again
            return 0
        spans, event = translated
        if not await self._export(spans):
            log.warning("span export failed; CircleCI workflow %s sent later", workflow_id)
            return None
        self._store.record(key, created)
        stopped = to_ns(str(workflow.get("stopped_at")))
        if (
            self._announce_after is not None
            and stopped is not None
            and stopped >= self._announce_after.timestamp() * 1e9
        ):
            await notify_safely(self._notifier, event)
        return 1

    async def run(self, interval_s: float, *, once: bool = False) -> None:
        """Poll until ``stop`` is set (or after one cycle with ``once``).

        A refused token ends the run (``CircleCIAuthError``). An outage ends a
        cycle; with ``once`` it is raised, otherwise logged once and retried.
        """
        outage = False
        while not self.stop.is_set():
            try:
                count = await unless_stopped(self.stop, self.poll_once())
            except CircleCIUnavailable as exc:
                if once:
                    raise
                if not outage:
                    log.warning("CircleCI poller: %s; trying again every %.0fs", exc, interval_s)
                outage = True
            else:
                if count is None:
                    return
                if outage:
                    log.info("CircleCI poller: CircleCI answers again")
                outage = False
                log.info("CircleCI: exported %d cancelled workflow(s)", count)
            if once:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=interval_s)


def _settled(
    pipeline: Mapping[str, Any],
    workflows: list[Mapping[str, Any]],
    created: datetime,
    now: datetime,
) -> bool:
    """Whether asking this pipeline again (until CircleCI updates it) could find anything."""
    if pipeline.get("state") == "errored":
        return True
    if not workflows:
        return now - created > EMPTY_PIPELINE_SETTLES_AFTER
    return all(workflow.get("status") in SETTLED_WORKFLOW_STATES for workflow in workflows)
