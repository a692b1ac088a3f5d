"""CircleCI webhook payloads shaped as CircleCI's webhook documentation shows them.

The workflow and job times are the documentation's own (2021); ``happened_at``,
when the delivery was made, is now unless a test asks otherwise, as the receiver
refuses deliveries older than its window.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from telemetry.pipeline.circleci import sign

SECRET = "s3cret-for-tests"
WORKFLOW_ID = "fda08377-fe7e-46b1-8992-3a7aaecac9c3"
JOB_ID = "8bd26d7c-1c5b-4b9b-9f5a-2fc3a1a3e6a4"

_PROJECT = {
    "id": "84996744-a854-4f5e-aea3-04e2851dc1d2",
    "name": "webhook-service",
    "slug": "github/circleci/webhook-service",
}
_PIPELINE = {
    "id": "1285fe1d-d3a6-44fc-8886-8979558254c4",
    "number": 130,
    "created_at": "2021-09-01T22:49:03.544Z",
    "trigger": {"type": "webhook"},
    "vcs": {
        "provider_name": "GitHub",
        "origin_repository_url": "https://github.com/circleci/webhook-service",
        "target_repository_url": "https://github.com/circleci/webhook-service",
        "revision": "1dc6aa69429bff4806ad6afe58d3d8f57e25973e",
        "commit": {"subject": "Description of change", "author": {"name": "Author Name"}},
        "branch": "main",
    },
}
_WORKFLOW = {
    "id": WORKFLOW_ID,
    "name": "build-test-deploy",
    "created_at": "2021-09-01T22:49:03.616Z",
    "stopped_at": "2021-09-01T22:49:34.170Z",
    "url": f"https://app.circleci.com/pipelines/github/circleci/webhook-service/130/workflows/{WORKFLOW_ID}",
    "status": "success",
}


def now() -> str:
    """A ``happened_at`` for a delivery made just now."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def ping(
    event_id: str = "92e0554a-837f-4086-913b-0dc7665d2a84", *, happened_at: str | None = None
) -> dict[str, Any]:
    return {
        "type": "ping",
        "id": event_id,
        "happened_at": happened_at or now(),
        "webhook": {"id": "d4ab06bc-eb79-463d-8aa4-47d066382d3b", "name": "fly.io"},
    }


def workflow_completed(
    event_id: str = "3888f21b-eaa7-38e3-8f3d-75a63bba8895",
    status: str = "success",
    *,
    happened_at: str | None = None,
) -> dict[str, Any]:
    workflow = copy.deepcopy(_WORKFLOW)
    workflow["status"] = status
    return {
        "type": "workflow-completed",
        "id": event_id,
        "happened_at": happened_at or now(),
        "webhook": {"id": "cf8c4fdd-0587-4da1-b4ca-4846e9640af9", "name": "Sample Webhook"},
        "project": dict(_PROJECT),
        "organization": {"id": "f22b6566-597d-46d5-ba74-99ef5bb3d85c", "name": "circleci"},
        "workflow": workflow,
        "pipeline": copy.deepcopy(_PIPELINE),
    }


def job_completed(
    event_id: str = "7d4e4b10-1a2b-4c3d-8e9f-0a1b2c3d4e5f",
    status: str = "failed",
    *,
    happened_at: str | None = None,
) -> dict[str, Any]:
    payload = workflow_completed(event_id, happened_at=happened_at)
    payload["type"] = "job-completed"
    payload["workflow"]["status"] = "failing"
    payload["job"] = {
        "id": JOB_ID,
        "name": "test",
        "started_at": "2021-09-01T22:49:05.250Z",
        "stopped_at": "2021-09-01T22:49:29.750Z",
        "status": status,
        "number": 136,
    }
    return payload


def body_and_header(payload: dict[str, Any], secret: str = SECRET) -> tuple[bytes, str]:
    body = json.dumps(payload).encode()
    return body, sign(secret.encode(), body)
