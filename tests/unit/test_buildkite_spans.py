from datetime import UTC, datetime, timedelta
from pathlib import Path

from telemetry import schema
from telemetry.pipeline import ids
from telemetry.pipeline.buildkite import build_spans
from telemetry.pipeline.cursor import CursorStore
from telemetry.pipeline.export import to_ns
from tests.fakes.buildkite_api import build


def test_build_is_a_trace_with_ids_from_its_uuids() -> None:
    data = build(1, "2024-05-01T10:01:00.000Z", state="failed")
    translated = build_spans(data)
    assert translated is not None
    spans, event = translated
    root, job, wait = spans
    assert root.trace_id == ids.trace_id_for_run(data["id"])
    assert root.span_id == ids.root_span_id(data["id"]) and root.parent_span_id is None
    assert job.span_id == ids.job_span_id(data["jobs"][0]["id"])
    assert job.parent_span_id == wait.parent_span_id == root.span_id
    assert root.attributes[schema.CICD_PIPELINE_RESULT] == "failure" and root.error
    assert job.attributes[schema.PROCESS_EXIT_CODE] == 1
    assert event.result == "failure" and event.duration_s == 55.0


def test_queue_wait_is_its_own_span_in_milliseconds() -> None:
    translated = build_spans(build(1, "2024-05-01T10:01:00.000Z"))
    assert translated is not None
    _root, job, wait = translated[0]
    assert wait.name == "queued: :package: Build"
    assert (wait.start_ns, wait.end_ns) == (
        to_ns("2024-05-01T10:00:01.000Z"),
        to_ns("2024-05-01T10:00:04.250Z"),
    )
    assert job.start_ns == wait.end_ns
    assert job.attributes[schema.CI_QUEUE_WAIT_MS] == 3250.0


def test_re_translation_gives_identical_spans() -> None:
    data = build(7, "2024-05-01T10:01:00.000Z")
    assert build_spans(data) == build_spans(data)


def test_unfinished_or_malformed_builds_give_nothing() -> None:
    running = build(1, "2024-05-01T10:01:00.000Z")
    running["finished_at"] = None
    assert build_spans(running) is None
    assert build_spans({"id": "not-a-uuid", "finished_at": "2024-05-01T10:01:00Z"}) is None
    odd = build(2, "2024-05-01T10:01:00.000Z")
    odd["jobs"] = [None, {"type": "script"}, "x"]
    odd["pipeline"] = "not an object"
    translated = build_spans(odd)
    assert translated is not None and len(translated[0]) == 1


def test_cursor_moves_forward_only_and_remembers_boundary_builds(tmp_path: Path) -> None:
    store = CursorStore(tmp_path / "bk.db")
    later = datetime(2024, 5, 2, tzinfo=UTC)
    store.record("acme", "app", "b2", later)
    store.record("acme", "app", "b1", later - timedelta(hours=1))
    assert store.cursor("acme", "app") == later
    assert store.exported("b1") and store.exported("b2")
    assert store.cursor("acme", "other") is None
    store.close()
    assert CursorStore(tmp_path / "bk.db").cursor("acme", "app") == later
