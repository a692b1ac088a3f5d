"""BuildKite builds as traces: the REST client and the build-to-spans translation.

The build UUID is the trace id, so re-exporting a build (a crash before the
cursor moved, a second ``--since`` backfill) lands on the same ids. Jobs are
children of the build span; a job's queue wait (``scheduled_at`` to
``started_at``) is a sibling span of its own plus a millisecond attribute, so
"slow because queued" and "slow because running" are told apart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from opentelemetry.util.types import AttributeValue

from telemetry import schema
from telemetry.pipeline import ids
from telemetry.pipeline.api_get import Backoff, Sleep
from telemetry.pipeline.events import PipelineEvent
from telemetry.pipeline.export import PipelineSpan, to_ns

log = logging.getLogger(__name__)

_RESULTS = {
    "passed": "success",
    "failed": "failure",
    "canceled": "cancellation",
    "skipped": "skip",
    "not_run": "skip",
    "timed_out": "timeout",
    "broken": "error",
    "expired": "error",
}
FINISHED_STATES = frozenset({"passed", "failed", "canceled", "skipped", "not_run"})
MAX_META_DATA = 32
MAX_TEXT_CHARS = 1024


class BuildkiteError(Exception):
    """The API refused us for a reason retrying will not fix (token, org, pipeline)."""


class BuildkiteClient:
    """``GET`` builds with a Bearer token; follows ``Link: rel="next"``; backs off on 429/5xx."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        token: str,
        org: str,
        *,
        sleep: Sleep = asyncio.sleep,
        max_attempts: int = 6,
        per_page: int = 100,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._org = org
        self._backoff = Backoff(
            service="BuildKite",
            rate_limit_header="RateLimit-Reset",  # seconds until the limit resets
            unavailable=BuildkiteError,
            sleep=sleep,
            max_attempts=max_attempts,
            logger=log,
        )
        self._per_page = per_page

    def builds_url(self, pipeline: str | None) -> str:
        org = f"{self._base}/v2/organizations/{self._org}"
        return f"{org}/pipelines/{pipeline}/builds" if pipeline else f"{org}/builds"

    async def finished_builds(
        self, pipeline: str | None, finished_from: datetime
    ) -> AsyncIterator[Mapping[str, Any]]:
        """Every build finished at or after ``finished_from``, across all pages."""
        url: str | None = self.builds_url(pipeline)
        params: dict[str, str] | None = {
            "finished_from": finished_from.isoformat().replace("+00:00", "Z"),
            "per_page": str(self._per_page),
            "page": "1",
        }
        while url is not None:
            page, next_url = await self._get(url, params)
            for build in page:
                if isinstance(build, Mapping):
                    yield build
            url, params = self._same_origin(next_url), None  # the next link carries the query

    def _same_origin(self, url: str | None) -> str | None:
        """Follow a next link only to the API we were configured with: the token goes along."""
        if url is None:
            return None
        if urlsplit(url)[:2] != urlsplit(self._base)[:2]:
            log.warning("ignoring a BuildKite next link to another origin")
            return None
        return url

    async def _get(self, url: str, params: dict[str, str] | None) -> tuple[list[Any], str | None]:
        def refuse(status: int) -> BuildkiteError:
            if status in (401, 403, 404):
                return BuildkiteError(
                    f"BuildKite answered {status} for {urlsplit(url).path}: "
                    "check BUILDKITE_API_TOKEN scopes, org and pipeline"
                )
            return BuildkiteError(f"BuildKite answered {status}")

        return await self._backoff.get(
            self._session, url, params=params, headers=self._headers, read=_page, refuse=refuse
        )


async def _page(resp: aiohttp.ClientResponse) -> tuple[list[Any], str | None]:
    """A page of builds and the ``Link: rel="next"`` URL, if any."""
    body = await resp.json(content_type=None)
    link = resp.links.get("next")
    next_url = str(link["url"]) if link else None
    return (body if isinstance(body, list) else []), next_url


def _str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) and value else None


def _obj(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, Mapping) else {}


def _text(obj: Mapping[str, Any], key: str) -> str | None:
    value = _str(obj, key)
    return schema.truncate(value, MAX_TEXT_CHARS) if value else None


def _flag(obj: Mapping[str, Any], key: str) -> bool | None:
    value = obj.get(key)
    return value if isinstance(value, bool) else None


def _meta_data(build: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """The build's ``meta_data`` (``buildkite-agent meta-data set``) as ``app.ci.meta_data.*``.

    Values are strings in BuildKite; at most ``MAX_META_DATA`` keys, each value cut.
    """
    found: dict[str, AttributeValue] = {}
    for key, value in list(_obj(build, "meta_data").items())[:MAX_META_DATA]:
        if isinstance(key, str) and key and isinstance(value, str | int | float | bool):
            text = value if isinstance(value, str) else str(value)
            found[schema.CI_META_DATA_PREFIX + key] = schema.truncate(text, MAX_TEXT_CHARS)
    return found


def result_of(state: str | None) -> str:
    return _RESULTS.get(state or "", "error")


def build_spans(build: Mapping[str, Any]) -> tuple[list[PipelineSpan], PipelineEvent] | None:
    """The build's root span, job spans and wait spans; None if it is not a finished build."""
    build_id = _str(build, "id")
    end = to_ns(_str(build, "finished_at"))
    if not build_id or not ids.is_uuid(build_id) or end is None:
        return None
    start = to_ns(_str(build, "started_at")) or to_ns(_str(build, "created_at")) or end
    raw_pipeline = build.get("pipeline")
    pipeline: Mapping[str, Any] = raw_pipeline if isinstance(raw_pipeline, Mapping) else {}
    name = _str(pipeline, "name") or _str(pipeline, "slug") or "pipeline"
    trace_id, root_id = ids.trace_id_for_run(build_id), ids.root_span_id(build_id)
    result = result_of(_str(build, "state"))
    pull = _obj(build, "pull_request")
    common: dict[str, AttributeValue] = {
        key: value
        for key, value in {
            schema.CI_SYSTEM: "buildkite",
            schema.CI_PROJECT: _str(pipeline, "slug"),
            schema.CI_PIPELINE_NUMBER: build.get("number")
            if isinstance(build.get("number"), int)
            else None,
            schema.CICD_PIPELINE_NAME: name,
            schema.CICD_PIPELINE_RUN_ID: build_id,
            schema.CICD_PIPELINE_RUN_URL: _str(build, "web_url"),
            schema.VCS_REPOSITORY_URL: _str(pipeline, "repository"),
            schema.VCS_REF_HEAD_NAME: _str(build, "branch"),
            schema.VCS_REF_HEAD_REVISION: _str(build, "commit"),
            schema.VCS_CHANGE_ID: _str(pull, "id"),
            schema.VCS_REF_BASE_NAME: _str(pull, "base"),
            schema.VCS_CHANGE_REPOSITORY: _str(pull, "repository"),
            schema.CI_BUILD_AUTHOR: _str(_obj(build, "author"), "name")
            or _str(_obj(build, "creator"), "name"),
            schema.CI_COMMIT_MESSAGE: _text(build, "message"),
            **_meta_data(build),
        }.items()
        if value is not None
    }
    root = PipelineSpan(
        name=name,
        trace_id=trace_id,
        span_id=root_id,
        parent_span_id=None,
        start_ns=start,
        end_ns=end,
        attributes={
            **common,
            schema.CICD_PIPELINE_RESULT: result,
            schema.CI_STATUS: _str(build, "state") or "",
        },
        error=result in {"failure", "error", "timeout"},
    )
    spans = [root]
    raw_jobs = build.get("jobs")
    jobs: list[Any] = raw_jobs if isinstance(raw_jobs, list) else []
    for job in jobs:
        if isinstance(job, Mapping):
            spans.extend(_job_spans(job, trace_id, root_id, common))
    event = PipelineEvent(
        system="buildkite",
        pipeline=name,
        result=result,
        branch=_str(build, "branch"),
        commit=_str(build, "commit"),
        duration_s=(end - start) / 1e9,
        url=_str(build, "web_url"),
        trace_id=f"{trace_id:032x}",
        run_id=build_id,
        start_s=start / 1e9,
    )
    return spans, event


def _job_spans(
    job: Mapping[str, Any], trace_id: int, root_id: int, common: Mapping[str, AttributeValue]
) -> list[PipelineSpan]:
    """A script job that ran: its span, and its queue wait when BuildKite recorded one."""
    job_id = _str(job, "id")
    started, finished = to_ns(_str(job, "started_at")), to_ns(_str(job, "finished_at"))
    if job.get("type") not in ("script", "command") or not job_id or started is None:
        return []
    name = _str(job, "name") or _str(job, "step_key") or _str(job, "command") or "job"
    result = result_of(_str(job, "state"))
    attributes: dict[str, AttributeValue] = {
        **common,
        schema.CICD_TASK_NAME: name,
        schema.CICD_TASK_RUN_ID: job_id,
        schema.CICD_TASK_RUN_RESULT: result,
        schema.CI_STATUS: _str(job, "state") or "",
    }
    if _str(job, "web_url"):
        attributes[schema.CICD_TASK_RUN_URL] = str(job["web_url"])
    if isinstance(job.get("exit_status"), int):
        attributes[schema.PROCESS_EXIT_CODE] = job["exit_status"]
    agent = _obj(job, "agent")
    extras: dict[str, AttributeValue | None] = {
        schema.CICD_WORKER_NAME: _str(agent, "name"),
        schema.CI_WORKER_VERSION: _str(agent, "version"),
        schema.CI_STEP_KEY: _str(job, "step_key"),
        schema.CI_JOB_RETRIED: _flag(job, "retried"),
        schema.CI_JOB_SOFT_FAILED: _flag(job, "soft_failed"),
    }
    attributes.update({key: value for key, value in extras.items() if value is not None})
    spans: list[PipelineSpan] = []
    scheduled = to_ns(_str(job, "scheduled_at"))
    if scheduled is not None and scheduled <= started:
        wait_ms = (started - scheduled) / 1e6
        attributes[schema.CI_QUEUE_WAIT_MS] = wait_ms
        spans.append(
            PipelineSpan(
                name=f"queued: {name}",
                trace_id=trace_id,
                span_id=ids.wait_span_id(job_id),
                parent_span_id=root_id,
                start_ns=scheduled,
                end_ns=started,
                attributes={
                    **common,
                    schema.CICD_TASK_NAME: name,
                    schema.CI_QUEUE_WAIT_MS: wait_ms,
                },
            )
        )
    spans.insert(
        0,
        PipelineSpan(
            name=name,
            trace_id=trace_id,
            span_id=ids.job_span_id(job_id),
            parent_span_id=root_id,
            start_ns=started,
            end_ns=finished if finished is not None else started,
            attributes=attributes,
            error=result in {"failure", "error", "timeout"},
        ),
    )
    return spans
