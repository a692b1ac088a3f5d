"""CircleCI webhooks: signature check, and payloads turned into spans.

Pure functions, no I/O: ``webhook`` serves them. Payload shapes follow
CircleCI's webhook documentation (``ping``, ``workflow-completed``,
``job-completed``); unknown fields are ignored and a missing optional field
leaves its attribute out, so a payload change never crashes the receiver.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from opentelemetry.util.types import AttributeValue

from telemetry import schema
from telemetry.pipeline import ids
from telemetry.pipeline.events import PipelineEvent
from telemetry.pipeline.export import PipelineSpan, to_ns

SIGNATURE_HEADER = "circleci-signature"
EVENT_TYPES = ("ping", "workflow-completed", "job-completed")

# CircleCI status words -> cicd.pipeline.result values.
_RESULTS = {
    "success": "success",
    "failed": "failure",
    "error": "error",
    "failing": "failure",
    "canceled": "cancellation",
    "cancelled": "cancellation",
    "unauthorized": "error",
    "not_run": "skip",
    "timedout": "timeout",
}


_DEFAULT_IDS = ids.CircleIds()


class BadPayload(ValueError):
    """The body is signed but not a webhook payload we can read."""


@dataclass(frozen=True)
class Translation:
    event_id: str
    event_type: str
    spans: list[PipelineSpan]
    finished: PipelineEvent | None  # set for workflow-completed: what to announce
    happened_ns: int | None = None  # the payload's ``happened_at``: how old the delivery is


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """True if any ``v1=`` entry of ``header`` is HMAC-SHA256(secret, body) in hex.

    The header may list several comma-separated entries (``v1=..,v2=..``) while
    CircleCI rotates schemes; only ``v1`` is known. Comparison is constant-time
    on bytes, so malformed or non-ASCII input simply fails.
    """
    if not header or not secret:
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest().encode()
    valid = False
    for entry in header.split(","):
        version, sep, value = entry.strip().partition("=")
        if sep and version.strip() == "v1":
            candidate = value.strip().lower().encode("utf-8", "replace")
            valid |= hmac.compare_digest(candidate, expected)
    return valid


def sign(secret: bytes, body: bytes) -> str:
    """The header value CircleCI would send (tests and local replays use it)."""
    return "v1=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _obj(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, Mapping) else {}


def _str(parent: Mapping[str, Any], key: str) -> str | None:
    value = parent.get(key)
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


def result_of(status: str | None) -> str:
    return _RESULTS.get((status or "").lower(), "error")


def parse(body: bytes) -> Mapping[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadPayload("body is not JSON") from None
    if not isinstance(payload, Mapping):
        raise BadPayload("body is not a JSON object")
    if not _str(payload, "id") or not _str(payload, "type"):
        raise BadPayload("payload has no id or type")
    return payload


def _common(payload: Mapping[str, Any]) -> dict[str, AttributeValue]:
    project, workflow = _obj(payload, "project"), _obj(payload, "workflow")
    pipeline = _obj(payload, "pipeline")
    vcs = _obj(pipeline, "vcs")
    commit = _obj(vcs, "commit")
    number = pipeline.get("number")
    number = number if isinstance(number, int) and not isinstance(number, bool) else None
    pairs: dict[str, AttributeValue | None] = {
        # CircleCI's own names (circleci-hook's), kept for boards built on them.
        schema.CIRCLECI_ORGANIZATION_NAME: _str(_obj(payload, "organization"), "name"),
        schema.CIRCLECI_PROJECT_SLUG: _str(project, "slug"),
        schema.CIRCLECI_PIPELINE_NUMBER: number,
        schema.CIRCLECI_COMMIT_AUTHOR: _str(_obj(commit, "author"), "name"),
        schema.CIRCLECI_COMMIT_SUBJECT: _str(commit, "subject"),
        schema.CI_SYSTEM: "circleci",
        schema.CI_EVENT_TYPE: _str(payload, "type"),
        schema.CI_PROJECT: _str(project, "slug"),
        schema.CI_PIPELINE_NUMBER: number,
        schema.CICD_PIPELINE_NAME: _str(workflow, "name"),
        schema.CICD_PIPELINE_RUN_ID: _str(workflow, "id"),
        schema.CICD_PIPELINE_RUN_URL: _str(workflow, "url"),
        schema.VCS_REPOSITORY_NAME: _str(project, "name"),
        schema.VCS_REPOSITORY_URL: _str(vcs, "origin_repository_url"),
        schema.VCS_PROVIDER_NAME: (_str(vcs, "provider_name") or "").lower() or None,
        schema.VCS_REF_HEAD_NAME: _str(vcs, "branch") or _str(vcs, "tag"),
        schema.VCS_REF_HEAD_TYPE: "branch"
        if _str(vcs, "branch")
        else "tag"
        if _str(vcs, "tag")
        else None,
        schema.VCS_REF_HEAD_REVISION: _str(vcs, "revision"),
    }
    return {key: value for key, value in pairs.items() if value is not None}


def translate(payload: Mapping[str, Any], circle_ids: ids.CircleIds = _DEFAULT_IDS) -> Translation:
    """Spans (and an announcement) for one verified payload; unknown types give none.

    ``circle_ids`` chooses how workflow and job span ids are derived
    (``CIRCLECI_ID_SCHEME``); the trace id is the workflow UUID either way.
    """
    happened = to_ns(_str(payload, "happened_at"))
    return replace(_translate(payload, happened, circle_ids), happened_ns=happened)


def _translate(
    payload: Mapping[str, Any], happened: int | None, circle_ids: ids.CircleIds
) -> Translation:
    event_id, event_type = str(payload["id"]), str(payload["type"])
    if event_type == "ping":
        at = happened or 0
        span = PipelineSpan(
            name="circleci ping",
            trace_id=ids.trace_id_for_run(event_id),
            span_id=ids.root_span_id(event_id),
            parent_span_id=None,
            start_ns=at,
            end_ns=at,
            attributes={schema.CI_SYSTEM: "circleci", schema.CI_EVENT_TYPE: "ping"},
        )
        return Translation(event_id, event_type, [span] if at else [], None)
    workflow = _obj(payload, "workflow")
    workflow_id = _str(workflow, "id")
    if event_type not in EVENT_TYPES or not workflow_id or not ids.is_uuid(workflow_id):
        return Translation(event_id, event_type, [], None)
    if event_type == "workflow-completed":
        return _workflow(payload, workflow, workflow_id, happened, circle_ids)
    return _job(payload, workflow_id, happened, circle_ids)


def _workflow(
    payload: Mapping[str, Any],
    workflow: Mapping[str, Any],
    workflow_id: str,
    happened: int | None,
    circle_ids: ids.CircleIds,
) -> Translation:
    end = to_ns(_str(workflow, "stopped_at")) or happened
    start = to_ns(_str(workflow, "created_at")) or end
    if end is None or start is None:
        raise BadPayload("workflow has no timestamps")
    status = _str(workflow, "status")
    result = result_of(status)
    attributes = {
        **_common(payload),
        schema.CICD_PIPELINE_RESULT: result,
        schema.CI_STATUS: status or "",
    }
    trace_id = ids.trace_id_for_run(workflow_id)
    span = PipelineSpan(
        name=_str(workflow, "name") or "workflow",
        trace_id=trace_id,
        span_id=circle_ids.workflow_span_id(workflow_id),
        parent_span_id=None,
        start_ns=start,
        end_ns=end,
        attributes=attributes,
        error=result in {"failure", "error", "timeout"},
    )
    vcs = _obj(_obj(payload, "pipeline"), "vcs")
    event = PipelineEvent(
        system="circleci",
        pipeline=f"{_str(_obj(payload, 'project'), 'slug') or '?'} {span.name}",
        result=result,
        branch=_str(vcs, "branch") or _str(vcs, "tag"),
        commit=_str(vcs, "revision"),
        duration_s=(end - start) / 1e9,
        url=_str(workflow, "url"),
        trace_id=f"{trace_id:032x}",
        run_id=workflow_id,
        start_s=start / 1e9,
    )
    return Translation(str(payload["id"]), "workflow-completed", [span], event)


def _job(
    payload: Mapping[str, Any], workflow_id: str, happened: int | None, circle_ids: ids.CircleIds
) -> Translation:
    job = _obj(payload, "job")
    job_id = _str(job, "id")
    if not job_id:
        raise BadPayload("job-completed without a job id")
    end = to_ns(_str(job, "stopped_at")) or happened
    start = to_ns(_str(job, "started_at")) or end  # a job canceled before it ran
    if end is None or start is None:
        raise BadPayload("job has no timestamps")
    status = _str(job, "status")
    result = result_of(status)
    attributes = {
        **_common(payload),
        schema.CICD_TASK_NAME: _str(job, "name") or "job",
        schema.CICD_TASK_RUN_ID: job_id,
        schema.CICD_TASK_RUN_RESULT: result,
        schema.CI_STATUS: status or "",
    }
    number = job.get("number")
    if isinstance(number, int) and not isinstance(number, bool):
        attributes[schema.CI_JOB_NUMBER] = number
        attributes[schema.CIRCLECI_JOB_NUMBER] = number
    span = PipelineSpan(
        name=_str(job, "name") or "job",
        trace_id=ids.trace_id_for_run(workflow_id),
        span_id=circle_ids.job_span_id(job_id),
        parent_span_id=circle_ids.workflow_span_id(workflow_id),
        start_ns=start,
        end_ns=end,
        attributes=attributes,
        error=result in {"failure", "error", "timeout"},
    )
    return Translation(str(payload["id"]), "job-completed", [span], None)
