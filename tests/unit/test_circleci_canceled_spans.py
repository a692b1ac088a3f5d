"""A cancelled CircleCI workflow, as API v2 reports it, becomes the spans ``ci finish`` never sent.

The payloads are the recorded pages in ``tests/fakes/recorded/circleci_api_*.json``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.ci_env import detect_run
from telemetry import schema
from telemetry.pipeline import ids
from telemetry.pipeline.circleci_api import unsent_workflow_spans
from telemetry.pipeline.export import to_ns
from tests.fakes.circleci_api import failed_run

RECORDED = Path(__file__).resolve().parents[1] / "fakes" / "recorded"
SLUG = "gh/acme/app"


def page(name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((RECORDED / f"circleci_api_{name}.json").read_text())[
        "items"
    ]
    return items


@pytest.fixture
def recorded() -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    (pipeline,) = page("pipelines")
    (workflow,) = page("workflows")
    return pipeline, workflow, page("jobs")


@pytest.mark.parametrize("scheme", ids.CIRCLE_ID_SCHEMES)
def test_the_cancelled_workflow_gets_a_root_and_its_unsent_jobs_spans_with_the_step_ids(
    recorded: tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]],
    scheme: ids.CircleIdScheme,
) -> None:
    pipeline, workflow, jobs = recorded
    circle_ids = ids.CircleIds(scheme)
    translated = unsent_workflow_spans(SLUG, pipeline, workflow, jobs, circle_ids)
    assert translated is not None
    spans, event = translated
    root, *job_spans = spans
    by_name = {span.name: span for span in job_spans}
    # build (success) and lint (failed) ran `ci finish --job`: theirs were sent already.
    assert sorted(by_name) == ["deploy", "test"]

    # What a step of the cancelled `test` job computed in CI, from CircleCI's variables:
    test_job = next(job for job in jobs if job["name"] == "test")
    run = detect_run(
        {"CIRCLE_WORKFLOW_ID": workflow["id"], "CIRCLE_WORKFLOW_JOB_ID": test_job["id"]},
        circle_ids,
    )
    assert root.trace_id == run.trace_id == int(workflow["id"].replace("-", ""), 16)
    assert root.span_id == run.root_span_id and root.parent_span_id is None
    assert by_name["test"].span_id == run.parent_span_id  # the step's parent is now sent
    assert by_name["test"].parent_span_id == root.span_id
    if scheme == "circleci-hook":
        assert f"{by_name['test'].span_id:016x}" == "c2a6a1f47e0b4a4c"  # the UUID's first 8 bytes
        assert f"{root.span_id:016x}" == "410c427b40a84bb4"

    assert root.attributes[schema.CICD_PIPELINE_RESULT] == "cancellation"
    assert (root.start_ns, root.end_ns) == (
        to_ns(workflow["created_at"]),
        to_ns(workflow["stopped_at"]),
    )
    assert not root.error
    test = by_name["test"]
    assert test.attributes[schema.CICD_TASK_RUN_RESULT] == "cancellation"
    assert test.attributes[schema.CIRCLECI_JOB_NUMBER] == 9103
    assert (test.start_ns, test.end_ns) == (
        to_ns(test_job["started_at"]),
        to_ns(test_job["stopped_at"]),
    )
    assert test.attributes[schema.CICD_TASK_RUN_URL] == (
        f"https://app.circleci.com/pipelines/gh/acme/app/2417/workflows/{workflow['id']}/jobs/9103"
    )
    deploy = by_name["deploy"]  # never started: a point at the workflow's end, a skip
    assert deploy.start_ns == deploy.end_ns == root.end_ns
    assert deploy.attributes[schema.CICD_TASK_RUN_RESULT] == "skip"
    assert schema.CIRCLECI_JOB_NUMBER not in deploy.attributes

    # The attributes people query by, as the webhook gives them.
    assert root.attributes[schema.CIRCLECI_PROJECT_SLUG] == SLUG
    assert root.attributes[schema.CIRCLECI_ORGANIZATION_NAME] == "acme"
    assert root.attributes[schema.CIRCLECI_PIPELINE_NUMBER] == 2417
    assert root.attributes[schema.CIRCLECI_COMMIT_SUBJECT] == "Fix the login redirect"
    assert root.attributes[schema.VCS_REF_HEAD_NAME] == "feature/login"
    assert root.attributes[schema.VCS_PROVIDER_NAME] == "github"

    assert event.result == "cancellation" and event.run_id == workflow["id"]
    assert event.pipeline == f"{SLUG} build-test-deploy"
    assert event.trace_id == workflow["id"].replace("-", "")


@pytest.mark.parametrize("status", ["success", "running", "on_hold", "not_run"])
def test_a_workflow_that_was_not_cancelled_is_left_to_ci_finish(
    recorded: tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]], status: str
) -> None:
    pipeline, workflow, jobs = recorded
    other = {**workflow, "status": status}
    assert unsent_workflow_spans(SLUG, pipeline, other, jobs, ids.CircleIds()) is None


def test_odd_payloads_give_no_spans_and_no_exception(
    recorded: tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]],
) -> None:
    pipeline, workflow, jobs = recorded
    circle_ids = ids.CircleIds()
    assert (
        unsent_workflow_spans(SLUG, pipeline, {**workflow, "stopped_at": None}, jobs, circle_ids)
        is None
    )
    assert (
        unsent_workflow_spans(SLUG, pipeline, {**workflow, "id": "../x"}, jobs, circle_ids) is None
    )
    odd_jobs: list[dict[str, Any]] = [{"id": "not-a-uuid", "status": "canceled"}, {"status": 3}]
    translated = unsent_workflow_spans(SLUG, {}, workflow, odd_jobs, circle_ids)
    assert translated is not None and len(translated[0]) == 1  # the root alone


@pytest.mark.parametrize("scheme", ids.CIRCLE_ID_SCHEMES)
def test_a_failure_that_left_the_last_job_blocked_gets_its_root_and_that_jobs_span(
    scheme: ids.CircleIdScheme,
) -> None:
    """``build`` failed, so ``deploy`` (the job that would run ``ci finish --result``)
    never started: nobody sent the root."""
    run, flow, jobs = failed_run(SLUG, 12, datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    circle_ids = ids.CircleIds(scheme)
    translated = unsent_workflow_spans(SLUG, run, flow, jobs, circle_ids)
    assert translated is not None
    (root, deploy), event = translated
    assert root.span_id == circle_ids.workflow_span_id(flow["id"]) and root.error
    assert root.attributes[schema.CICD_PIPELINE_RESULT] == "failure"
    assert deploy.name == "deploy" and deploy.parent_span_id == root.span_id
    assert deploy.attributes[schema.CICD_TASK_RUN_RESULT] == "skip"
    assert event.result == "failure"


def test_a_failure_whose_last_job_ran_is_left_to_its_ci_finish() -> None:
    run, flow, jobs = failed_run(
        SLUG, 13, datetime(2026, 12, 1, 12, 0, tzinfo=UTC), last_job_ran=True
    )
    assert unsent_workflow_spans(SLUG, run, flow, jobs, ids.CircleIds()) is None
