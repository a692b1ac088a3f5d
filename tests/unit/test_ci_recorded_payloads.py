"""Every CI field we read, against payloads and environments as each provider records them.

The files are in ``tests/fakes/recorded/`` (see its README for where each comes from).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.ci_env import detect_run
from telemetry import schema
from telemetry.pipeline import ids
from telemetry.pipeline.buildkite import build_spans
from telemetry.pipeline.circleci import translate

RECORDED = Path(__file__).resolve().parents[1] / "fakes" / "recorded"


def recorded(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())


# -- CircleCI -------------------------------------------------------------------------


def test_circleci_job_environment_gives_job_number_name_and_pull_request() -> None:
    run = detect_run(recorded("circleci_env.json"))
    attrs = run.attributes
    assert attrs[schema.CI_JOB_NUMBER] == 10 and attrs[schema.CIRCLECI_JOB_NUMBER] == 10
    assert attrs[schema.CI_JOB_NAME] == "rust/lint-test-build"
    assert attrs[schema.CIRCLECI_ORGANIZATION_NAME] == "DavidS"
    assert attrs[schema.VCS_CHANGE_ID] == "7"
    assert attrs[schema.VCS_CHANGE_AUTHOR] == "contributor"
    assert attrs[schema.VCS_CHANGE_REPOSITORY] == "circleci-hook"


def test_circleci_pull_request_number_comes_from_the_url_when_no_pr_number_is_set() -> None:
    env = recorded("circleci_env.json")
    for key in ("CIRCLE_PR_NUMBER", "CIRCLE_PR_USERNAME", "CIRCLE_PR_REPONAME"):
        del env[key]
    attrs = detect_run(env).attributes
    assert attrs[schema.VCS_CHANGE_ID] == "7"
    assert attrs[schema.VCS_CHANGE_AUTHOR] == "DavidS"  # who pushed: CircleCI's only name


def test_circleci_branch_build_has_no_change_fields() -> None:
    env = {
        k: v
        for k, v in recorded("circleci_env.json").items()
        if "PULL" not in k and "_PR_" not in k
    }
    attrs = detect_run(env).attributes
    assert schema.VCS_CHANGE_ID not in attrs and schema.VCS_CHANGE_AUTHOR not in attrs


def test_circleci_webhook_keeps_circleci_hook_attribute_names_beside_cicd() -> None:
    [span] = translate(recorded("circleci_job_completed.json")).spans
    attrs = span.attributes
    assert attrs[schema.CIRCLECI_ORGANIZATION_NAME] == "DavidS"
    assert attrs[schema.CIRCLECI_PROJECT_SLUG] == "github/DavidS/circleci-hook"
    assert attrs[schema.CIRCLECI_PIPELINE_NUMBER] == 10
    assert attrs[schema.CIRCLECI_JOB_NUMBER] == 10
    assert attrs[schema.CIRCLECI_COMMIT_AUTHOR] == "David Schmitt"
    assert attrs[schema.CIRCLECI_COMMIT_SUBJECT] == (
        "chore: implement basic event debugging and the PingEvent"
    )
    assert attrs[schema.CICD_TASK_NAME] == "rust/lint-test-build"
    assert attrs[schema.CICD_PIPELINE_RUN_ID] == "410c427b-40a8-4bb4-9d42-5561f5bce5ba"


def test_default_id_scheme_is_unchanged_hashes() -> None:
    [span] = translate(recorded("circleci_job_completed.json")).spans
    assert span.span_id == ids.job_span_id("20e45d7e-e4a7-4aa3-8f92-fd6d9d01da75")
    assert span.parent_span_id == ids.root_span_id("410c427b-40a8-4bb4-9d42-5561f5bce5ba")


def test_circleci_hook_scheme_takes_the_first_8_bytes_of_the_job_uuid() -> None:
    scheme = ids.CircleIds("circleci-hook")
    [span] = translate(recorded("circleci_job_completed.json"), scheme).spans
    assert f"{span.span_id:016x}" == "20e45d7ee4a74aa3"
    assert f"{span.parent_span_id:016x}" == "410c427b40a84bb4"
    assert f"{span.trace_id:032x}" == "410c427b40a84bb49d425561f5bce5ba"


def test_steps_point_at_the_job_span_of_the_chosen_scheme() -> None:
    env = recorded("circleci_env.json")
    hook = detect_run(env, ids.CircleIds("circleci-hook"))
    assert f"{hook.parent_span_id:016x}" == "20e45d7ee4a74aa3"
    assert f"{hook.root_span_id:016x}" == "410c427b40a84bb4"
    ours = detect_run(env)
    assert ours.parent_span_id == ids.job_span_id(env["CIRCLE_WORKFLOW_JOB_ID"])
    assert ours.root_span_id == ids.root_span_id(env["CIRCLE_WORKFLOW_ID"])


# -- GitHub Actions -------------------------------------------------------------------


def test_github_pull_request_fields_from_the_environment_and_event_file(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text((RECORDED / "github_pull_request_event.json").read_text())
    env = {**recorded("github_env.json"), "GITHUB_EVENT_PATH": str(event)}
    attrs = detect_run(env).attributes
    assert attrs[schema.CI_PIPELINE_NUMBER] == 317
    assert attrs[schema.CI_JOB_NAME] == "test"
    assert attrs[schema.VCS_CHANGE_ID] == "42"
    assert attrs[schema.VCS_CHANGE_TITLE] == "Trace the deploy step"
    assert attrs[schema.VCS_CHANGE_AUTHOR] == "octocat"
    assert attrs[schema.VCS_CHANGE_REPOSITORY] == "https://github.com/octocat/chatops-bot"
    assert attrs[schema.VCS_REF_HEAD_NAME] == "feature/deploy-spans"
    assert attrs[schema.VCS_REF_BASE_NAME] == "main"


def test_github_without_a_readable_event_file_still_has_the_pr_number(tmp_path: Path) -> None:
    (tmp_path / "event.json").write_text("{not json")
    env = {**recorded("github_env.json"), "GITHUB_EVENT_PATH": str(tmp_path / "event.json")}
    attrs = detect_run(env).attributes
    assert attrs[schema.VCS_CHANGE_ID] == "42"
    assert attrs[schema.VCS_CHANGE_AUTHOR] == "octocat"  # GITHUB_ACTOR
    assert schema.VCS_CHANGE_TITLE not in attrs


# -- BuildKite ------------------------------------------------------------------------


def test_buildkite_job_environment_gives_build_number_and_pull_request() -> None:
    attrs = detect_run(recorded("buildkite_env.json")).attributes
    assert attrs[schema.CI_PIPELINE_NUMBER] == 1
    assert attrs[schema.CI_JOB_NAME] == ":package:"
    assert attrs[schema.CI_STEP_KEY] == "package"
    assert attrs[schema.VCS_CHANGE_ID] == "123"
    assert attrs[schema.VCS_REF_BASE_NAME] == "main"
    assert attrs[schema.VCS_CHANGE_REPOSITORY] == "https://github.com/contributor/my-pipeline"


def test_buildkite_pull_request_false_is_no_change() -> None:
    env = {**recorded("buildkite_env.json"), "BUILDKITE_PULL_REQUEST": "false"}
    attrs = detect_run(env).attributes
    assert schema.VCS_CHANGE_ID not in attrs and schema.VCS_REF_BASE_NAME not in attrs


def test_buildkite_build_keeps_author_message_meta_data_and_pull_request() -> None:
    translated = build_spans(recorded("buildkite_build.json"))
    assert translated is not None
    root = translated[0][0]
    attrs = root.attributes
    assert attrs[schema.CI_BUILD_AUTHOR] == "Keith Pitt"
    assert attrs[schema.CI_COMMIT_MESSAGE] == "Bumping to version 0.2-beta.6"
    assert attrs[schema.CI_META_DATA_PREFIX + "release-version"] == "0.2-beta.6"
    assert attrs[schema.CI_META_DATA_PREFIX + "some build data"] == "value"
    assert attrs[schema.VCS_CHANGE_ID] == "123"
    assert attrs[schema.CI_PIPELINE_NUMBER] == 1


def test_buildkite_job_keeps_retried_soft_failed_step_key_and_agent() -> None:
    translated = build_spans(recorded("buildkite_build.json"))
    assert translated is not None
    job = translated[0][1]
    attrs = job.attributes
    assert attrs[schema.CI_JOB_RETRIED] is True
    assert attrs[schema.CI_JOB_SOFT_FAILED] is True
    assert attrs[schema.CI_STEP_KEY] == "package"
    assert attrs[schema.CICD_WORKER_NAME] == "my-agent"
    assert attrs[schema.CI_WORKER_VERSION] == "3.60.0"


def test_buildkite_meta_data_is_bounded() -> None:
    build = recorded("buildkite_build.json")
    build["meta_data"] = {f"k{i}": "x" * 5000 for i in range(100)}
    translated = build_spans(build)
    assert translated is not None
    meta = {
        k: v for k, v in translated[0][0].attributes.items() if k.startswith("app.ci.meta_data.")
    }
    assert len(meta) == 32
    assert all(isinstance(v, str) and len(v) <= 1024 for v in meta.values())


@pytest.mark.parametrize("missing", ["author", "meta_data", "pull_request", "message"])
def test_buildkite_build_without_optional_fields_still_translates(missing: str) -> None:
    build = recorded("buildkite_build.json")
    build[missing] = None
    assert build_spans(build) is not None


def test_circleci_workflow_root_under_both_schemes() -> None:
    payload = recorded("circleci_workflow_completed.json")
    [ours] = translate(payload).spans
    [hook] = translate(payload, ids.CircleIds("circleci-hook")).spans
    assert ours.span_id == ids.root_span_id("410c427b-40a8-4bb4-9d42-5561f5bce5ba")
    assert f"{hook.span_id:016x}" == "410c427b40a84bb4"
    assert ours.trace_id == hook.trace_id and hook.parent_span_id is None
    attrs = hook.attributes
    assert attrs[schema.CICD_PIPELINE_RESULT] == "success"
    assert attrs[schema.CIRCLECI_PIPELINE_NUMBER] == 10
    assert attrs[schema.CIRCLECI_ORGANIZATION_NAME] == "DavidS"
    assert schema.CIRCLECI_JOB_NUMBER not in attrs
