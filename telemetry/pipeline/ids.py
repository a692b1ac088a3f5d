"""Deterministic trace and span ids, shared by ``ci step``, the webhook and the poller.

The seeds used random ids, so re-exporting a build made a second trace and spans
from separate processes never met. Here every id is a function of an id the CI
system already gave us:

- trace id: a UUID run id (CircleCI workflow, BuildKite build) keeps its own 128
  bits, so the trace is found by pasting the workflow id; any other run id
  (GitHub's numeric run id plus attempt) is hashed.
- the run's root span id is a hash of the run id; a job's span id is a hash of the
  job id. The namespaces differ, so the two never collide for one UUID.

CircleCI setups built on circleci-hook (seed 003) already hold traces whose job
span id is the first 8 bytes of the job UUID; ``CircleIds`` with the
``circleci-hook`` scheme derives ids that way (``CIRCLECI_ID_SCHEME``), so their
``otel-cli`` spans and ours meet the same job span.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Literal

CircleIdScheme = Literal["chatops", "circleci-hook"]
CIRCLE_ID_SCHEMES: tuple[CircleIdScheme, ...] = ("chatops", "circleci-hook")

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def _normal(run_id: str) -> str:
    """One spelling per id: a UUID in any case or dash style hashes the same."""
    try:
        return str(uuid.UUID(run_id.strip()))
    except ValueError:
        return run_id.strip()


def _hash(namespace: str, value: str, size: int) -> int:
    digest = hashlib.sha256(f"{namespace}\0{_normal(value)}".encode()).digest()
    return int.from_bytes(digest[:size], "big") or 1  # all-zero ids are invalid


def trace_id_for_run(run_id: str) -> int:
    """The 128-bit trace id of a pipeline run."""
    try:
        return uuid.UUID(run_id.strip()).int or 1
    except ValueError:
        return _hash("run", run_id, 16)


def github_run_key(run_id: str, attempt: str | None) -> str:
    """A re-run is a new attempt with the same run id; each attempt is its own trace."""
    return f"github:{run_id}:{attempt or '1'}"


def root_span_id(run_id: str) -> int:
    """The span id of the run's root span (workflow, build, pipeline run)."""
    return _hash("root", run_id, 8)


def job_span_id(job_id: str) -> int:
    """The span id of one job (CircleCI job, BuildKite job)."""
    return _hash("job", job_id, 8)


def wait_span_id(job_id: str) -> int:
    """The span id of a job's queue wait, a sibling of the job span."""
    return _hash("wait", job_id, 8)


def _uuid_prefix(value: str) -> int:
    """The first 8 bytes of a UUID as a span id (circleci-hook's ``array_ref!(id, 0, 8)``)."""
    return int.from_bytes(uuid.UUID(value.strip()).bytes[:8], "big") or 1


@dataclass(frozen=True, slots=True)
class CircleIds:
    """Span ids of a CircleCI workflow and its jobs under one scheme.

    ``chatops`` (default): hashes, as for every other CI. ``circleci-hook``: the job
    span id is the first 8 bytes of the job UUID, as circleci-hook derives it; the
    workflow span id, by the same rule, the first 8 bytes of the workflow UUID.
    The trace id is the workflow UUID under both. A non-UUID id falls back to the hash.
    """

    scheme: CircleIdScheme = "chatops"

    def workflow_span_id(self, workflow_id: str) -> int:
        if self.scheme == "circleci-hook" and is_uuid(workflow_id):
            return _uuid_prefix(workflow_id)
        return root_span_id(workflow_id)

    def job_span_id(self, job_id: str) -> int:
        if self.scheme == "circleci-hook" and is_uuid(job_id):
            return _uuid_prefix(job_id)
        return job_span_id(job_id)


def traceparent(trace_id: int, span_id: int) -> str:
    """A W3C ``traceparent`` value, sampled."""
    return f"00-{trace_id:032x}-{span_id:016x}-01"


def parse_traceparent(value: str | None) -> tuple[int, int] | None:
    """``(trace_id, span_id)`` of a valid ``traceparent``, else None (never raises)."""
    match = _TRACEPARENT.match((value or "").strip().lower())
    if not match:
        return None
    trace_id, span_id = int(match[1], 16), int(match[2], 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id


def is_uuid(value: str) -> bool:
    """CircleCI and BuildKite ids are UUIDs; anything else in a URL path is refused."""
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True
