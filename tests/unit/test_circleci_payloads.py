import json

import pytest

from telemetry import schema
from telemetry.pipeline import ids
from telemetry.pipeline.circleci import BadPayload, parse, translate
from telemetry.pipeline.export import to_ns
from tests.fakes import circleci_hooks as fake


def test_workflow_becomes_root_span_with_payload_times_and_vcs_attributes() -> None:
    result = translate(fake.workflow_completed())
    [span] = result.spans
    assert span.trace_id == ids.trace_id_for_run(fake.WORKFLOW_ID)
    assert span.span_id == ids.root_span_id(fake.WORKFLOW_ID)
    assert span.parent_span_id is None
    assert span.start_ns == to_ns("2021-09-01T22:49:03.616Z")
    assert span.end_ns == to_ns("2021-09-01T22:49:34.170Z")
    attrs = span.attributes
    assert attrs[schema.CICD_PIPELINE_NAME] == "build-test-deploy"
    assert attrs[schema.CICD_PIPELINE_RESULT] == "success"
    assert attrs[schema.VCS_REF_HEAD_NAME] == "main"
    assert attrs[schema.VCS_REF_HEAD_REVISION] == "1dc6aa69429bff4806ad6afe58d3d8f57e25973e"
    assert attrs[schema.VCS_PROVIDER_NAME] == "github"
    assert attrs[schema.CI_PROJECT] == "github/circleci/webhook-service"
    assert not span.error


def test_finished_workflow_is_announced_with_trace_id_and_duration() -> None:
    event = translate(fake.workflow_completed(status="failed")).finished
    assert event is not None
    assert event.result == "failure"
    assert event.trace_id == fake.WORKFLOW_ID.replace("-", "")
    assert event.duration_s == pytest.approx(30.554)
    assert event.branch == "main"


def test_job_is_child_of_workflow_span_with_job_span_id() -> None:
    [span] = translate(fake.job_completed()).spans
    assert span.parent_span_id == ids.root_span_id(fake.WORKFLOW_ID)
    assert span.span_id == ids.job_span_id(fake.JOB_ID)
    assert span.attributes[schema.CICD_TASK_RUN_RESULT] == "failure"
    assert span.error
    assert span.end_ns - span.start_ns == 24_500_000_000


def test_job_canceled_before_start_gets_zero_length_span() -> None:
    payload = fake.job_completed(status="canceled")
    payload["job"]["started_at"] = None
    [span] = translate(payload).spans
    assert span.start_ns == span.end_ns
    assert span.attributes[schema.CICD_TASK_RUN_RESULT] == "cancellation"
    assert not span.error


def test_unknown_fields_and_types_are_tolerated() -> None:
    payload = fake.workflow_completed()
    payload["brand_new"] = {"nested": [1, 2]}
    payload["workflow"]["extra"] = True
    payload["pipeline"]["number"] = "not a number"
    assert len(translate(payload).spans) == 1
    assert translate({"id": "e", "type": "project-archived"}).spans == []


@pytest.mark.parametrize("body", [b"", b"[]", b"{", b'{"type":"ping"}', "\u00ff".encode("latin-1")])
def test_unreadable_bodies_raise_bad_payload(body: bytes) -> None:
    with pytest.raises(BadPayload):
        parse(body)


def test_workflow_without_timestamps_is_bad_payload() -> None:
    payload = fake.workflow_completed()
    del payload["happened_at"]
    payload["workflow"]["created_at"] = None
    payload["workflow"]["stopped_at"] = "yesterday"
    with pytest.raises(BadPayload):
        translate(json.loads(json.dumps(payload)))
