import uuid

from telemetry.pipeline import ids


def test_uuid_run_id_keeps_its_bits_as_trace_id() -> None:
    run = "fda08377-fe7e-46b1-8992-3a7aaecac9c3"
    assert f"{ids.trace_id_for_run(run):032x}" == run.replace("-", "")


def test_uuid_spelling_does_not_change_any_id() -> None:
    run = "fda08377-fe7e-46b1-8992-3a7aaecac9c3"
    other = run.upper().replace("-", "")
    assert ids.trace_id_for_run(run) == ids.trace_id_for_run(other)
    assert ids.root_span_id(run) == ids.root_span_id(other)


def test_github_attempts_are_separate_traces() -> None:
    first = ids.trace_id_for_run(ids.github_run_key("42", "1"))
    second = ids.trace_id_for_run(ids.github_run_key("42", "2"))
    assert first != second
    assert first == ids.trace_id_for_run(ids.github_run_key("42", None))


def test_root_job_and_wait_ids_never_collide_for_one_uuid() -> None:
    value = str(uuid.uuid4())
    assert len({ids.root_span_id(value), ids.job_span_id(value), ids.wait_span_id(value)}) == 3


def test_traceparent_round_trips_and_rejects_garbage() -> None:
    header = ids.traceparent(0xABC, 0xDEF)
    assert header == "00-00000000000000000000000000000abc-0000000000000def-01"
    assert ids.parse_traceparent(header) == (0xABC, 0xDEF)
    for bad in (None, "", "00-0-0-01", "00-" + "0" * 32 + "-" + "1" * 16 + "-01", "zz"):
        assert ids.parse_traceparent(bad) is None
