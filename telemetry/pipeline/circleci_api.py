"""CircleCI API v2: the client the cancellation poller asks, and cancelled workflows as spans.

Why a poller at all: without the webhook, ``ci finish`` sends the job span the steps
point at and, from the last job, the workflow's root span. A workflow cancelled
before its last job runs ``ci finish`` has no root, and its cancelled jobs no job
span, because nothing runs in CI after a cancel: only CircleCI knows. This module
asks CircleCI (``GET /project/{slug}/pipeline``, ``/pipeline/{id}/workflow``,
``/workflow/{id}/job``, header ``Circle-Token``, pages by ``next_page_token`` sent
back as ``page-token``) and builds the missing spans with the ids ``ci finish`` and
the webhook use (``ids.CircleIds``), so the steps already sent join the trace.

The token goes only to the configured API base: every URL is built from it (page
tokens are opaque values, not links) and redirects are not followed.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncGenerator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aiohttp
from opentelemetry.util.types import AttributeValue

from telemetry import schema
from telemetry.pipeline import ids
from telemetry.pipeline.api_get import Backoff, Sleep
from telemetry.pipeline.circleci import result_of
from telemetry.pipeline.events import PipelineEvent
from telemetry.pipeline.export import PipelineSpan, to_ns

log = logging.getLogger(__name__)

TOKEN_HEADER = "Circle-Token"
#: ``gh/org/repo``, ``bb/org/repo``, ``circleci/ORG-ID/PROJECT-ID``: three plain segments.
PROJECT_SLUG = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
#: Jobs that ended this way ran their ``when: always`` ``ci finish --job`` step, which
#: sent their span; every other job of a cancelled workflow gets one from the poller.
FINISHED_BY_CI_FINISH = frozenset({"success", "failed"})
#: Workflow statuses that no longer change (a pipeline whose workflows all have one is
#: settled: its workflows are not asked again until the pipeline changes).
SETTLED_WORKFLOW_STATES = frozenset(
    {"success", "failed", "error", "canceled", "unauthorized", "not_run"}
)
WEB_APP = "https://app.circleci.com/pipelines"
# Job statuses the webhook's table does not name: a job the cancel stopped or never let run.
_JOB_RESULTS = {
    "blocked": "skip",
    "queued": "cancellation",
    "not_running": "cancellation",
    "running": "cancellation",
    "on_hold": "cancellation",
    "retried": "skip",
    "infrastructure_fail": "error",
    "terminated-unknown": "error",
}


class CircleCIError(Exception):
    """CircleCI refused us for a reason retrying will not fix (token, project slug)."""


class CircleCIAuthError(CircleCIError):
    """The token was refused (401/403): nothing will work until it is fixed."""


class CircleCIUnavailable(CircleCIError):
    """CircleCI kept answering 429/5xx or could not be reached: try again next cycle."""


class CircleCIClient:
    """``GET`` with ``Circle-Token``; follows ``next_page_token``; backs off on 429/5xx."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        token: str,
        *,
        sleep: Sleep = asyncio.sleep,
        max_attempts: int = 6,
        max_pages: int = 20,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._headers = {TOKEN_HEADER: token, "Accept": "application/json"}
        self._backoff = Backoff(
            service="CircleCI",
            rate_limit_header="Retry-After",  # seconds, on a 429
            unavailable=CircleCIUnavailable,
            sleep=sleep,
            max_attempts=max_attempts,
            # a body that is not JSON (a proxy's error page) is tried again too
            retry_on=(aiohttp.ClientError, TimeoutError, ValueError),
            logger=log,
        )
        self._max_pages = max_pages

    def pipelines(self, slug: str) -> AsyncGenerator[Mapping[str, Any]]:
        """The project's pipelines, newest first, across pages.

        The caller stops early (``contextlib.aclosing``): pages are asked as it reads.
        """
        if not PROJECT_SLUG.match(slug) or any(not part.strip(".") for part in slug.split("/")):
            raise CircleCIError(f"not a CircleCI project slug (vcs/org/repo): {slug!r}")
        path = "/project/" + "/".join(quote(part, safe="") for part in slug.split("/"))
        return self._items(path + "/pipeline")

    async def workflows(self, pipeline_id: str) -> list[Mapping[str, Any]]:
        return [item async for item in self._items(f"/pipeline/{_uuid(pipeline_id)}/workflow")]

    async def jobs(self, workflow_id: str) -> list[Mapping[str, Any]]:
        return [item async for item in self._items(f"/workflow/{_uuid(workflow_id)}/job")]

    async def _items(self, path: str) -> AsyncGenerator[Mapping[str, Any]]:
        token: str | None = None
        for _ in range(self._max_pages):
            body = await self._get(path, {"page-token": token} if token else None)
            items = body.get("items")
            for item in items if isinstance(items, list) else []:
                if isinstance(item, Mapping):
                    yield item
            following = body.get("next_page_token")
            if not isinstance(following, str) or not following:
                return
            token = following
        log.info("CircleCI: %s has more than %d pages; the rest is not read", path, self._max_pages)

    async def _get(self, path: str, params: dict[str, str] | None) -> Mapping[str, Any]:
        def refuse(status: int) -> CircleCIError:
            if status in (401, 403):
                return CircleCIAuthError(
                    f"CircleCI answered {status} for {path}: "
                    "check CIRCLECI_TOKEN (a personal API token of a user who can see "
                    "the project)"
                )
            if status == 404:
                return CircleCIError(
                    f"CircleCI answered 404 for {path}: check CIRCLECI_PROJECTS "
                    "(vcs/org/repo) and that the token's user can see the project"
                )
            return CircleCIError(f"CircleCI answered {status} for {path}")

        return await self._backoff.get(
            self._session,
            self._base + path,
            params=params,
            headers=self._headers,
            read=_json_object,
            refuse=refuse,
            allow_redirects=False,
        )


async def _json_object(resp: aiohttp.ClientResponse) -> Mapping[str, Any]:
    body = await resp.json(content_type=None)
    return body if isinstance(body, Mapping) else {}


def _uuid(value: str) -> str:
    """Ids go into a URL path: only UUIDs, so a payload cannot steer the request."""
    if not ids.is_uuid(value):
        raise CircleCIError(f"CircleCI returned an id that is not a UUID: {value[:40]!r}")
    return value


def _obj(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, Mapping) else {}


def _str(parent: Mapping[str, Any], key: str) -> str | None:
    value = parent.get(key)
    return value if isinstance(value, str) and value else None


def _int(parent: Mapping[str, Any], key: str) -> int | None:
    value = parent.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def created_at(pipeline: Mapping[str, Any]) -> datetime | None:
    text = _str(pipeline, "created_at")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def job_result(status: str | None) -> str:
    return _JOB_RESULTS.get(status or "") or result_of(status)


def workflow_url(slug: str, pipeline_number: int | None, workflow_id: str) -> str | None:
    if pipeline_number is None:
        return None
    return f"{WEB_APP}/{slug}/{pipeline_number}/workflows/{workflow_id}"


def _common(
    slug: str, pipeline: Mapping[str, Any], workflow: Mapping[str, Any], workflow_id: str
) -> dict[str, AttributeValue]:
    """The attributes the webhook gives a workflow, from what the API says of it."""
    vcs = _obj(pipeline, "vcs")
    number = _int(pipeline, "number") or _int(workflow, "pipeline_number")
    provider, org, repo = ([*slug.split("/"), "", ""])[:3]
    branch, tag = _str(vcs, "branch"), _str(vcs, "tag")
    pairs: dict[str, AttributeValue | None] = {
        schema.CIRCLECI_ORGANIZATION_NAME: None if provider == "circleci" else org or None,
        schema.CIRCLECI_PROJECT_SLUG: slug,
        schema.CIRCLECI_PIPELINE_NUMBER: number,
        schema.CIRCLECI_COMMIT_SUBJECT: _str(_obj(vcs, "commit"), "subject"),
        schema.CI_SYSTEM: "circleci",
        schema.CI_EVENT_TYPE: "api-poll",
        schema.CI_PROJECT: slug,
        schema.CI_PIPELINE_NUMBER: number,
        schema.CICD_PIPELINE_NAME: _str(workflow, "name"),
        schema.CICD_PIPELINE_RUN_ID: workflow_id,
        schema.CICD_PIPELINE_RUN_URL: workflow_url(slug, number, workflow_id),
        schema.VCS_REPOSITORY_NAME: None if provider == "circleci" else repo or None,
        schema.VCS_REPOSITORY_URL: _str(vcs, "origin_repository_url"),
        schema.VCS_PROVIDER_NAME: (_str(vcs, "provider_name") or "").lower() or None,
        schema.VCS_REF_HEAD_NAME: branch or tag,
        schema.VCS_REF_HEAD_TYPE: "branch" if branch else "tag" if tag else None,
        schema.VCS_REF_HEAD_REVISION: _str(vcs, "revision"),
    }
    return {key: value for key, value in pairs.items() if value is not None}


#: Workflow endings that can leave the run without its root: the last job, which runs
#: ``ci finish --result``, may never have started.
UNFINISHED_WORKFLOW_STATES = frozenset({"canceled", "failed", "error"})


def terminal_jobs_unfinished(jobs: list[Mapping[str, Any]]) -> bool:
    """Whether a job no other job waits for (one that would run ``ci finish --result``)
    did not end ``success``/``failed``: then nobody sent the workflow's root."""
    needed = {
        dependency
        for job in jobs
        for dependency in (job.get("dependencies") or [])
        if isinstance(dependency, str)
    }
    return any(
        _str(job, "status") not in FINISHED_BY_CI_FINISH
        for job in jobs
        if _str(job, "id") not in needed
    )


def unsent_workflow_spans(
    slug: str,
    pipeline: Mapping[str, Any],
    workflow: Mapping[str, Any],
    jobs: list[Mapping[str, Any]],
    circle_ids: ids.CircleIds,
) -> tuple[list[PipelineSpan], PipelineEvent] | None:
    """The root span of a workflow whose last job never ran ``ci finish``, and the spans
    of its jobs nobody sent.

    That is every ``canceled`` workflow, and a ``failed`` or ``error`` one whose
    terminal jobs (those no other job depends on) did not all end ``success`` or
    ``failed``: a failure upstream left them ``blocked``. Root: ``created_at`` to
    ``stopped_at``, result ``cancellation`` (``failure``, ``error``), span id
    ``circle_ids.workflow_span_id`` (what ``ci finish`` and the webhook use). Jobs:
    every job but those that ended ``success``/``failed`` (``FINISHED_BY_CI_FINISH``),
    under the root, span id ``circle_ids.job_span_id`` (what steps name as parent):
    ``started_at`` (or, never started, ``stopped_at``) to ``stopped_at`` (else the
    workflow's). None for anything else, and without a UUID or a stop time.
    """
    workflow_id = _str(workflow, "id")
    end = to_ns(_str(workflow, "stopped_at"))
    status = _str(workflow, "status")
    if status not in UNFINISHED_WORKFLOW_STATES or not workflow_id or end is None:
        return None
    if status != "canceled" and not terminal_jobs_unfinished(jobs):
        return None  # the last job ran, and its `ci finish --result` sent the root
    if not ids.is_uuid(workflow_id):
        return None
    outcome = result_of(status)
    start = min(to_ns(_str(workflow, "created_at")) or end, end)
    common = _common(slug, pipeline, workflow, workflow_id)
    trace_id = ids.trace_id_for_run(workflow_id)
    root_id = circle_ids.workflow_span_id(workflow_id)
    name = _str(workflow, "name") or "workflow"
    root = PipelineSpan(
        name=name,
        trace_id=trace_id,
        span_id=root_id,
        parent_span_id=None,
        start_ns=start,
        end_ns=end,
        attributes={
            **common,
            schema.CICD_PIPELINE_RESULT: outcome,
            schema.CI_STATUS: status,
        },
        error=outcome in {"failure", "error", "timeout"},
    )
    spans = [root]
    for job in jobs:
        job_id, status = _str(job, "id"), _str(job, "status")
        if not job_id or not ids.is_uuid(job_id) or status in FINISHED_BY_CI_FINISH:
            continue
        job_end = to_ns(_str(job, "stopped_at")) or end
        job_start = min(to_ns(_str(job, "started_at")) or job_end, job_end)
        result = job_result(status)
        attributes: dict[str, AttributeValue] = {
            **common,
            schema.CICD_TASK_NAME: _str(job, "name") or "job",
            schema.CICD_TASK_RUN_ID: job_id,
            schema.CICD_TASK_RUN_RESULT: result,
            schema.CI_STATUS: status or "",
        }
        number = _int(job, "job_number")
        if number is not None:
            attributes[schema.CI_JOB_NUMBER] = number
            attributes[schema.CIRCLECI_JOB_NUMBER] = number
            url = common.get(schema.CICD_PIPELINE_RUN_URL)
            if isinstance(url, str):
                attributes[schema.CICD_TASK_RUN_URL] = f"{url}/jobs/{number}"
        spans.append(
            PipelineSpan(
                name=_str(job, "name") or "job",
                trace_id=trace_id,
                span_id=circle_ids.job_span_id(job_id),
                parent_span_id=root_id,
                start_ns=job_start,
                end_ns=job_end,
                attributes=attributes,
                error=result in {"failure", "error", "timeout"},
            )
        )
    vcs = _obj(pipeline, "vcs")
    url = common.get(schema.CICD_PIPELINE_RUN_URL)
    event = PipelineEvent(
        system="circleci",
        pipeline=f"{slug} {name}",
        result=outcome,
        branch=_str(vcs, "branch") or _str(vcs, "tag"),
        commit=_str(vcs, "revision"),
        duration_s=(end - start) / 1e9,
        url=url if isinstance(url, str) else None,
        trace_id=f"{trace_id:032x}",
        run_id=workflow_id,
        start_s=start / 1e9,
    )
    return spans, event
