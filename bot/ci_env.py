"""What the CI system tells a process about its run, read from its environment.

This is the one place (besides ``config``) that reads ``os.environ``: the CI
run variables (``CIRCLE_WORKFLOW_ID``, ``GITHUB_RUN_ID``, ``BUILDKITE_BUILD_ID``...)
are set by the CI system, not by our operator, so they are no ``Settings``
fields; and ``CIRCLECI_OTLP_*`` is an open-ended family of header variables.
Kept free of aiohttp so ``chatops ci step`` starts fast.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

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


def _vcs(pairs: Mapping[str, str | None]) -> dict[str, AttributeValue]:
    return {key: value for key, value in pairs.items() if value}


def detect_run(environ: Mapping[str, str]) -> CiRun:
    """Which pipeline run this process belongs to, from the CI system's variables.

    Order: CircleCI, GitHub Actions, BuildKite; else an inherited ``TRACEPARENT``
    (a step inside a step, or a caller that started a trace); else a trace of
    its own, so a step run by hand still produces a span.
    """
    env = environ.get
    run = _circleci(environ) or _github(environ) or _buildkite(environ)
    inherited = ids.parse_traceparent(env("TRACEPARENT"))
    if run is not None:
        if inherited and inherited[0] == run.trace_id:  # nested: join the enclosing step
            return CiRun(
                run.system,
                run.run_key,
                run.trace_id,
                inherited[1],
                run.pipeline_name,
                run.attributes,
            )
        return run
    if inherited:
        return CiRun("traceparent", f"{inherited[0]:032x}", inherited[0], inherited[1])
    key = f"local:{os.getpid()}:{os.urandom(8).hex()}"
    return CiRun("local", key, ids.trace_id_for_run(key), None)


def _circleci(environ: Mapping[str, str]) -> CiRun | None:
    workflow = environ.get("CIRCLE_WORKFLOW_ID")
    if not workflow:
        return None
    job = environ.get("CIRCLE_WORKFLOW_JOB_ID")
    name = environ.get("CIRCLE_PROJECT_REPONAME")
    attributes = _vcs(
        {
            schema.CI_SYSTEM: "circleci",
            schema.CICD_PIPELINE_NAME: name,
            schema.CICD_PIPELINE_RUN_ID: workflow,
            schema.CICD_TASK_RUN_ID: job,
            schema.CICD_TASK_RUN_URL: environ.get("CIRCLE_BUILD_URL"),
            schema.VCS_REPOSITORY_URL: environ.get("CIRCLE_REPOSITORY_URL"),
            schema.VCS_REF_HEAD_NAME: environ.get("CIRCLE_BRANCH") or environ.get("CIRCLE_TAG"),
            schema.VCS_REF_HEAD_REVISION: environ.get("CIRCLE_SHA1"),
        }
    )
    parent = ids.job_span_id(job) if job else ids.root_span_id(workflow)
    return CiRun("circleci", workflow, ids.trace_id_for_run(workflow), parent, name, attributes)


def _github(environ: Mapping[str, str]) -> CiRun | None:
    run_id = environ.get("GITHUB_RUN_ID")
    if not run_id:
        return None
    key = ids.github_run_key(run_id, environ.get("GITHUB_RUN_ATTEMPT"))
    server = environ.get("GITHUB_SERVER_URL", "https://github.com")
    repo = environ.get("GITHUB_REPOSITORY")
    name = environ.get("GITHUB_WORKFLOW")
    attributes = _vcs(
        {
            schema.CI_SYSTEM: "github",
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
    attributes = _vcs(
        {
            schema.CI_SYSTEM: "buildkite",
            schema.CICD_PIPELINE_NAME: name,
            schema.CICD_PIPELINE_RUN_ID: build,
            schema.CICD_PIPELINE_RUN_URL: environ.get("BUILDKITE_BUILD_URL"),
            schema.CICD_TASK_RUN_ID: job,
            schema.VCS_REPOSITORY_URL: environ.get("BUILDKITE_REPO"),
            schema.VCS_REF_HEAD_NAME: environ.get("BUILDKITE_BRANCH"),
            schema.VCS_REF_HEAD_REVISION: environ.get("BUILDKITE_COMMIT"),
        }
    )
    parent = ids.job_span_id(job) if job else ids.root_span_id(build)
    return CiRun("buildkite", build, ids.trace_id_for_run(build), parent, name, attributes)
