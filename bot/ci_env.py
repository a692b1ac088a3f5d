"""What the CI system tells a process about its run, read from its environment.

This is the one place (besides ``config``) that reads ``os.environ``: the CI
run variables (``CIRCLE_WORKFLOW_ID``, ``GITHUB_RUN_ID``, ``BUILDKITE_BUILD_ID``...)
are set by the CI system, not by our operator, so they are no ``Settings``
fields; and ``CIRCLECI_OTLP_*`` is an open-ended family of header variables.
Kept free of aiohttp so ``chatops ci step`` starts fast.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from opentelemetry.util.types import AttributeValue

from telemetry import schema
from telemetry.pipeline import ids
from telemetry.pipeline.steps import CiRun

CIRCLECI_OTLP_PREFIX = "CIRCLECI_OTLP_"


def environment() -> dict[str, str]:
    """A snapshot of the process environment (the child of ``ci step`` gets it too)."""
    return dict(os.environ)


def circleci_otlp_headers(environ: Mapping[str, str]) -> dict[str, str]:
    """Every ``CIRCLECI_OTLP_*`` variable but the endpoint, as a header, as seed 003 does.

    ``CIRCLECI_OTLP_X_HONEYCOMB_TEAM`` becomes ``x-honeycomb-team``.
    """
    headers: dict[str, str] = {}
    for key, value in environ.items():
        upper = key.upper()
        if not upper.startswith(CIRCLECI_OTLP_PREFIX) or upper == "CIRCLECI_OTLP_ENDPOINT":
            continue
        name = upper[len(CIRCLECI_OTLP_PREFIX) :].lower().replace("_", "-")
        if name:
            headers[name] = value
    return headers


def _vcs(pairs: Mapping[str, AttributeValue | None]) -> dict[str, AttributeValue]:
    return {key: value for key, value in pairs.items() if value not in (None, "")}


def _number(value: str | None) -> int | None:
    """A build or PR number as CI systems write it: digits; anything else is no number."""
    value = (value or "").strip()
    return int(value) if value.isdigit() else None


_PULL_REF = re.compile(r"^refs/pull/(\d+)/")
_PULL_URL = re.compile(r"/pull/(\d+)/?$")
_EVENT_FILE_MAX_BYTES = 4 * 1024 * 1024


def _github_pull_request(environ: Mapping[str, str]) -> Mapping[str, Any]:
    """The ``pull_request`` object of the event file GitHub writes for the job, or {}.

    Only the event file names the PR's author, title and source repository; it is
    read only for pull-request events, and a missing, huge or unreadable file is
    simply no PR detail (a step must never fail over telemetry).
    """
    path = environ.get("GITHUB_EVENT_PATH")
    if not path or not environ.get("GITHUB_EVENT_NAME", "").startswith("pull_request"):
        return {}
    try:
        with open(path, "rb") as handle:
            event = json.loads(handle.read(_EVENT_FILE_MAX_BYTES))
    except (OSError, ValueError):
        return {}
    pull = event.get("pull_request") if isinstance(event, dict) else None
    return pull if isinstance(pull, dict) else {}


def _dig(obj: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = obj.get(key) if isinstance(obj, Mapping) else None
        if value is None:
            return None
        obj = value
    return obj


def detect_run(environ: Mapping[str, str], circle_ids: ids.CircleIds | None = None) -> CiRun:
    """Which pipeline run this process belongs to, from the CI system's variables.

    Order: CircleCI, GitHub Actions, BuildKite; else an inherited ``TRACEPARENT``
    (a step inside a step, or a caller that started a trace); else a trace of
    its own, so a step run by hand still produces a span.
    """
    env = environ.get
    run = (
        _circleci(environ, circle_ids or ids.CircleIds()) or _github(environ) or _buildkite(environ)
    )
    inherited = ids.parse_traceparent(env("TRACEPARENT"))
    if run is not None:
        if inherited and inherited[0] == run.trace_id:  # nested: join the enclosing step
            return replace(run, parent_span_id=inherited[1])
        return run
    if inherited:
        return CiRun("traceparent", f"{inherited[0]:032x}", inherited[0], inherited[1])
    key = f"local:{os.getpid()}:{os.urandom(8).hex()}"
    return CiRun("local", key, ids.trace_id_for_run(key), None)


def _circleci(environ: Mapping[str, str], circle_ids: ids.CircleIds) -> CiRun | None:
    workflow = environ.get("CIRCLE_WORKFLOW_ID")
    if not workflow:
        return None
    job = environ.get("CIRCLE_WORKFLOW_JOB_ID")
    name = environ.get("CIRCLE_PROJECT_REPONAME")
    pull_url = environ.get("CIRCLE_PULL_REQUEST", "")
    pull = _number(environ.get("CIRCLE_PR_NUMBER")) or _number(
        (_PULL_URL.search(pull_url) or [None, None])[1]
    )
    job_number = _number(environ.get("CIRCLE_BUILD_NUM"))
    attributes = _vcs(
        {
            schema.CI_SYSTEM: "circleci",
            schema.CI_JOB_NAME: environ.get("CIRCLE_JOB"),
            schema.CI_JOB_NUMBER: job_number,
            schema.CIRCLECI_JOB_NUMBER: job_number,
            schema.CIRCLECI_ORGANIZATION_NAME: environ.get("CIRCLE_PROJECT_USERNAME"),
            schema.VCS_OWNER_NAME: environ.get("CIRCLE_PROJECT_USERNAME"),
            schema.VCS_REPOSITORY_NAME: name,
            schema.VCS_CHANGE_ID: str(pull) if pull else None,
            schema.VCS_CHANGE_AUTHOR: (
                environ.get("CIRCLE_PR_USERNAME") or environ.get("CIRCLE_USERNAME")
            )
            if pull
            else None,
            schema.VCS_CHANGE_REPOSITORY: environ.get("CIRCLE_PR_REPONAME") if pull else None,
            schema.CICD_PIPELINE_NAME: name,
            schema.CICD_PIPELINE_RUN_ID: workflow,
            schema.CICD_TASK_RUN_ID: job,
            schema.CICD_TASK_RUN_URL: environ.get("CIRCLE_BUILD_URL"),
            schema.VCS_REPOSITORY_URL: environ.get("CIRCLE_REPOSITORY_URL"),
            schema.VCS_REF_HEAD_NAME: environ.get("CIRCLE_BRANCH") or environ.get("CIRCLE_TAG"),
            schema.VCS_REF_HEAD_REVISION: environ.get("CIRCLE_SHA1"),
        }
    )
    root = circle_ids.workflow_span_id(workflow)
    job_span = circle_ids.job_span_id(job) if job else None
    return CiRun(
        "circleci",
        workflow,
        ids.trace_id_for_run(workflow),
        job_span or root,
        name,
        attributes,
        root_id=root,
        job_span_id=job_span,
    )


def _github(environ: Mapping[str, str]) -> CiRun | None:
    run_id = environ.get("GITHUB_RUN_ID")
    if not run_id:
        return None
    key = ids.github_run_key(run_id, environ.get("GITHUB_RUN_ATTEMPT"))
    server = environ.get("GITHUB_SERVER_URL", "https://github.com")
    repo = environ.get("GITHUB_REPOSITORY")
    name = environ.get("GITHUB_WORKFLOW")
    pull = _github_pull_request(environ)
    ref_number = _PULL_REF.match(environ.get("GITHUB_REF", ""))
    number = _dig(pull, "number") or (int(ref_number[1]) if ref_number else None)
    head_repo = _dig(pull, "head", "repo", "full_name")
    attributes = _vcs(
        {
            schema.CI_SYSTEM: "github",
            schema.CI_JOB_NAME: environ.get("GITHUB_JOB"),
            schema.CI_PIPELINE_NUMBER: _number(environ.get("GITHUB_RUN_NUMBER")),
            schema.VCS_CHANGE_ID: str(number) if number else None,
            schema.VCS_CHANGE_TITLE: _dig(pull, "title"),
            schema.VCS_CHANGE_AUTHOR: _dig(pull, "user", "login")
            or (environ.get("GITHUB_ACTOR") if number else None),
            schema.VCS_CHANGE_REPOSITORY: f"{server}/{head_repo}" if head_repo else None,
            schema.VCS_REF_BASE_NAME: environ.get("GITHUB_BASE_REF"),
            schema.VCS_OWNER_NAME: environ.get("GITHUB_REPOSITORY_OWNER"),
            schema.CICD_PIPELINE_NAME: name,
            schema.CICD_PIPELINE_RUN_ID: run_id,
            schema.CICD_PIPELINE_RUN_URL: f"{server}/{repo}/actions/runs/{run_id}"
            if repo
            else None,
            schema.VCS_PROVIDER_NAME: "github",
            schema.VCS_REPOSITORY_URL: f"{server}/{repo}" if repo else None,
            schema.VCS_REF_HEAD_NAME: environ.get("GITHUB_HEAD_REF")
            or environ.get("GITHUB_REF_NAME"),
            schema.VCS_REF_HEAD_REVISION: environ.get("GITHUB_SHA"),
        }
    )
    return CiRun("github", key, ids.trace_id_for_run(key), ids.root_span_id(key), name, attributes)


def _buildkite(environ: Mapping[str, str]) -> CiRun | None:
    build = environ.get("BUILDKITE_BUILD_ID")
    if not build:
        return None
    job = environ.get("BUILDKITE_JOB_ID")
    name = environ.get("BUILDKITE_PIPELINE_SLUG")
    pull = _number(environ.get("BUILDKITE_PULL_REQUEST"))  # "false" outside a PR
    attributes = _vcs(
        {
            schema.CI_SYSTEM: "buildkite",
            schema.CI_JOB_NAME: environ.get("BUILDKITE_LABEL"),
            schema.CI_STEP_KEY: environ.get("BUILDKITE_STEP_KEY"),
            schema.CI_PIPELINE_NUMBER: _number(environ.get("BUILDKITE_BUILD_NUMBER")),
            schema.CI_BUILD_AUTHOR: environ.get("BUILDKITE_BUILD_AUTHOR"),
            schema.VCS_CHANGE_ID: str(pull) if pull else None,
            schema.VCS_CHANGE_AUTHOR: environ.get("BUILDKITE_BUILD_AUTHOR") if pull else None,
            schema.VCS_CHANGE_REPOSITORY: environ.get("BUILDKITE_PULL_REQUEST_REPO")
            if pull
            else None,
            schema.VCS_REF_BASE_NAME: environ.get("BUILDKITE_PULL_REQUEST_BASE_BRANCH")
            if pull
            else None,
            schema.CICD_PIPELINE_NAME: name,
            schema.CICD_PIPELINE_RUN_ID: build,
            schema.CICD_PIPELINE_RUN_URL: environ.get("BUILDKITE_BUILD_URL"),
            schema.CICD_TASK_RUN_ID: job,
            schema.VCS_REPOSITORY_URL: environ.get("BUILDKITE_REPO"),
            schema.VCS_REF_HEAD_NAME: environ.get("BUILDKITE_BRANCH"),
            schema.VCS_REF_HEAD_REVISION: environ.get("BUILDKITE_COMMIT"),
        }
    )
    job_span = ids.job_span_id(job) if job else None
    return CiRun(
        "buildkite",
        build,
        ids.trace_id_for_run(build),
        job_span or ids.root_span_id(build),
        name,
        attributes,
        job_span_id=job_span,
    )
