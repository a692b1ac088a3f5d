"""Root spans, trace fields and outcomes, read back from the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
import logging

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from telemetry import schema
from telemetry.schema import Outcome
from telemetry.spans import current_trace, root_span, send_span

tracer = trace.get_tracer(__name__)


def _root(fields: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return root_span(schema.ROOT_SPAN_MESSAGE, {schema.MESSAGE_ID: "1"}, fields or {})


def test_every_message_starts_its_own_trace(spans: InMemorySpanExporter) -> None:
    with tracer.start_as_current_span("outer"), _root():
        pass
    root = next(s for s in spans.get_finished_spans() if s.name == "message")
    assert root.parent is None


def test_trace_fields_reach_descendants_in_other_tasks(spans: InMemorySpanExporter) -> None:
    async def work() -> None:
        with tracer.start_as_current_span("child"):
            await asyncio.sleep(0)

    async def main() -> None:
        with _root({schema.AUTHOR_ID: "42"}) as message_trace:
            message_trace.command_resolved("aci restart", "web")
            await asyncio.create_task(work())

    asyncio.run(main())
    by_name = {s.name: s for s in spans.get_finished_spans()}
    child = by_name["child"]
    assert child.attributes[schema.COMMAND] == "aci restart"
    assert child.attributes[schema.AUTHOR_ID] == "42"
    assert by_name["command aci restart"].attributes[schema.COMMAND_ARGS] == "web"


def test_user_mistakes_keep_status_unset(spans: InMemorySpanExporter) -> None:
    with _root() as message_trace:
        message_trace.record_error(ValueError("not a number"), Outcome.BAD_INPUT)
    (root,) = spans.get_finished_spans()
    assert root.attributes[schema.OUTCOME] == "bad_input"
    assert root.attributes[schema.ERROR_TYPE] == "ValueError"
    assert "error.type" not in root.attributes  # not a failure of the bot
    assert root.status.status_code is StatusCode.UNSET


def test_bot_failures_set_error_status_and_an_exception_event(
    spans: InMemorySpanExporter,
) -> None:
    with _root() as message_trace:
        message_trace.record_error(RuntimeError("boom"))
    (root,) = spans.get_finished_spans()
    assert root.attributes[schema.OUTCOME] == "error"
    assert root.status.status_code is StatusCode.ERROR
    assert [event.name for event in root.events] == ["exception"]


class UpstreamDown(Exception):
    pass


def test_a_failed_root_carries_the_stable_error_type_and_keeps_app_error_type(
    spans: InMemorySpanExporter,
) -> None:
    with _root() as message_trace:
        message_trace.record_error(UpstreamDown("503"))
    (root,) = spans.get_finished_spans()
    assert root.attributes["error.type"] == f"{__name__}.UpstreamDown"
    assert root.attributes[schema.ERROR_TYPE] == "UpstreamDown"


def test_an_escaping_exception_is_an_error(spans: InMemorySpanExporter) -> None:
    with pytest.raises(KeyError), _root():
        raise KeyError("x")
    (root,) = spans.get_finished_spans()
    assert root.attributes[schema.OUTCOME] == "error"
    assert root.attributes["error.type"] == "KeyError"
    assert current_trace() is None


def test_send_span_is_a_child_of_the_root(spans: InMemorySpanExporter) -> None:
    with _root(), send_span():
        pass
    send, root = spans.get_finished_spans()
    assert send.name == schema.SEND_SPAN
    assert send.parent is not None and send.parent.span_id == root.context.span_id


def test_log_records_carry_the_trace_and_span_ids(
    spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO), _root() as message_trace:
        logging.getLogger("chatops.test").info("inside a message")
    (record,) = [r for r in caplog.records if r.getMessage() == "inside a message"]
    assert record.otelTraceID == message_trace.trace_id  # type: ignore[attr-defined]
    span_id = f"{message_trace.span.get_span_context().span_id:016x}"
    assert record.otelSpanID == span_id  # type: ignore[attr-defined]


def test_seeding_the_global_random_module_does_not_repeat_trace_ids(
    spans: InMemorySpanExporter,
) -> None:
    import random

    seen = set()
    for _ in range(3):
        random.seed(42)  # a game command, or a test framework, might do this
        with _root() as message_trace:
            seen.add(message_trace.trace_id)
    assert len(seen) == 3
