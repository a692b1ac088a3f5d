"""The compiled codec writes exactly what the Python code writes: OTLP bytes and store rows.

``telemetry/_span_codec.c`` encodes the spans a message makes, and makes their store
rows, and hands every other span to ``otlp_wire.encode_span_python`` or
``store.span_row_python``; each claim here compares the two (the OTLP bytes also with
the SDK's own encoding, by decoding both).
"""

from __future__ import annotations

import json
import json.encoder
import logging
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from telemetry import _span_codec, otlp_wire, store
from telemetry.otlp_wire import encode_request, encode_span, encode_span_python
from telemetry.store import span_row, span_row_python
from telemetry.tracer import LeanTracerProvider


class Keep(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def lean_spans(build: Any) -> list[ReadableSpan]:
    provider = LeanTracerProvider(Resource.create({"service.name": "chatops-bot"}))
    keep = Keep()
    provider.add_span_processor(keep)
    build(provider.get_tracer("chatops"))
    return keep.spans


def assert_same(span: ReadableSpan) -> None:
    compiled = encode_span(span)
    assert compiled == encode_span_python(span)
    theirs = ExportTraceServiceRequest.FromString(encode_spans([span]).SerializeToString())
    assert ExportTraceServiceRequest.FromString(encode_request([span])) == theirs


@pytest.fixture
def fallbacks() -> Iterator[list[ReadableSpan]]:
    """The spans the compiled encoder hands to Python while the test runs."""
    seen: list[ReadableSpan] = []

    def counting(span: Any) -> bytes:
        seen.append(span)
        return encode_span_python(span)

    _span_codec.set_encode_fallback(counting)
    try:
        yield seen
    finally:
        _span_codec.set_encode_fallback(encode_span_python)


def message_trace(tracer: trace.Tracer) -> None:
    """What ``!ping`` makes: root with the message's fields, the send, its POST."""
    root_attributes = {
        "discord.message.id": "1577427273148137475",
        "discord.author.name": "alice ☃",
        "discord.shard.id": 0,
        "app.command": "ping",
        "app.outcome": "ok",
        "app.response.ms": 12.5,
        "app.flag.beta": False,
        "app.args": "x" * 300,
    }
    with tracer.start_as_current_span(
        "message", context=otel_context.Context(), attributes=root_attributes
    ) as root:
        with tracer.start_as_current_span("discord.send") as send:
            send.set_attribute("app.response", "pong")
            with tracer.start_as_current_span(
                "POST",
                kind=SpanKind.CLIENT,
                attributes={"http.request.method": "POST", "server.port": 443},
            ) as post:
                post.set_attribute("http.response.status_code", 429)
                post.set_status(Status(StatusCode.ERROR))
        root.set_status(Status(StatusCode.OK))


def test_the_compiled_encoder_is_the_one_in_use() -> None:
    assert otlp_wire.encode_span is _span_codec.encode_span


def test_a_message_trace_is_encoded_in_c_with_the_same_bytes(
    fallbacks: list[ReadableSpan],
) -> None:
    spans = lean_spans(message_trace)
    assert [span.name for span in spans] == ["POST", "discord.send", "message"]
    for span in spans:
        assert_same(span)
    assert fallbacks == []  # none of a message's spans needed Python


def test_spans_it_does_not_cover_go_to_python_unchanged(fallbacks: list[ReadableSpan]) -> None:
    def build(tracer: trace.Tracer) -> None:
        with tracer.start_as_current_span("with an event") as span:
            span.add_event("retry", {"attempt": 2})
        with tracer.start_as_current_span("with a sequence") as span:
            span.set_attribute("tags", ["a", "b"])
        with tracer.start_as_current_span("with bytes") as span:
            cast_attributes(span)["raw"] = b"\x00\x01"
        with tracer.start_as_current_span("out of int64") as span:
            cast_attributes(span)["big"] = 2**70
        with tracer.start_as_current_span("lone surrogate") as span:
            span.set_attribute("text", "a\udc80b")
        state = TraceState([("vendor", "abc")])
        parent = NonRecordingSpan(
            SpanContext(1, 2, is_remote=True, trace_flags=TraceFlags(1), trace_state=state)
        )
        with tracer.start_as_current_span(
            "remote parent with trace state", context=trace.set_span_in_context(parent)
        ):
            pass
        with tracer.start_as_current_span("error with a description") as span:
            try:
                raise ValueError("boom")
            except ValueError as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, "ValueError: boom"))

    logging.disable(logging.CRITICAL)
    try:
        spans = lean_spans(build)
        for span in spans:
            assert encode_span(span) == encode_span_python(span)
    finally:
        logging.disable(logging.NOTSET)
    assert [span.name for span in fallbacks] == [
        "with an event",
        "with a sequence",
        "with bytes",
        "out of int64",
        "lone surrogate",
        "remote parent with trace state",
        "error with a description",
    ]


def cast_attributes(span: trace.Span) -> dict[str, Any]:
    attributes = span._attributes  # type: ignore[attr-defined]
    assert isinstance(attributes, dict)
    return attributes


def test_sdk_spans_still_encode_through_python(fallbacks: list[ReadableSpan]) -> None:
    span = ReadableSpan(
        name="sdk",
        context=SpanContext(5, 6, is_remote=False),
        attributes={"a": 1},
        start_time=1,
        end_time=2,
    )
    assert encode_span(span) == encode_span_python(span)
    assert fallbacks == [span]  # its attributes are a read-only mapping, not a dict


def test_nan_and_negative_zero_keep_their_bits() -> None:
    def build(tracer: trace.Tracer) -> None:
        with tracer.start_as_current_span(
            "floats", attributes={"nan": math.nan, "zero": -0.0, "inf": -math.inf}
        ):
            pass

    (span,) = lean_spans(build)
    assert encode_span(span) == encode_span_python(span)


# --- property: random lean spans ----------------------------------------------------------------

scalars = st.one_of(
    st.text(max_size=140),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(),
    st.floats(),
    st.none(),
    st.binary(max_size=4),
    st.lists(st.text(max_size=3), max_size=2),
)
keys = st.one_of(st.text(max_size=12), st.integers(0, 3))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    attributes=st.dictionaries(keys, scalars, max_size=10),
    name=st.text(max_size=30),
    kind=st.sampled_from(list(SpanKind)),
    code=st.sampled_from(list(StatusCode)),
    description=st.none() | st.text(max_size=20),
    times=st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)),
    parent=st.sampled_from(["none", "local", "remote"]),
    trace_id=st.integers(1, 2**128 - 1),
)
def test_random_lean_spans_encode_as_python_does(
    attributes: dict[Any, Any],
    name: str,
    kind: SpanKind,
    code: StatusCode,
    description: str | None,
    times: tuple[int, int],
    parent: str,
    trace_id: int,
) -> None:
    def build(tracer: trace.Tracer) -> None:
        context = otel_context.Context()
        if parent != "none":
            parent_context = SpanContext(
                trace_id, 7, is_remote=parent == "remote", trace_flags=TraceFlags(1)
            )
            context = trace.set_span_in_context(NonRecordingSpan(parent_context))
        span = tracer.start_span(name, context=context, kind=kind, start_time=times[0])
        span.set_status(Status(code, description) if code is StatusCode.ERROR else Status(code))
        span.end(end_time=times[1])

    (span,) = lean_spans(build)
    span._attributes = attributes  # type: ignore[attr-defined]
    logging.disable(logging.CRITICAL)
    try:
        assert encode_span(span) == encode_span_python(span)
    finally:
        logging.disable(logging.NOTSET)


# --- store rows -----------------------------------------------------------------------------


def test_a_message_traces_rows_are_made_in_c_as_python_makes_them() -> None:
    python_rows: list[ReadableSpan] = []

    def counting(span: ReadableSpan) -> Any:
        python_rows.append(span)
        return span_row_python(span)

    spans = lean_spans(message_trace)
    for span in spans:
        assert span_row(span) == span_row_python(span)
    assert store.span_row is _span_codec.store_row
    _configure_store(counting)
    try:
        rows = [span_row(span) for span in spans]
    finally:
        _configure_store(span_row_python)
    assert python_rows == []  # none of a message's spans needed Python
    root = rows[-1]
    assert root[10] == 1 and root[11] == "ping"  # a root, with its command column


def _configure_store(fallback: Any) -> None:
    _span_codec.configure_store(
        fallback,
        store._service,
        json.encoder.encode_basestring_ascii,
        tuple(kind.name for kind in sorted(SpanKind, key=lambda kind: kind.value)),
        tuple(code.name for code in sorted(StatusCode, key=lambda code: code.value)),
        store.schema.COMMAND,
        store.schema.AUTHOR_ID,
        store.schema.GUILD_ID,
        store.schema.OUTCOME,
        store.schema.CICD_PIPELINE_RESULT,
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    attributes=st.dictionaries(
        st.one_of(
            st.text(max_size=12),
            st.sampled_from(
                [
                    "app.command",
                    "app.outcome",
                    "discord.author.id",
                    "discord.guild.id",
                    "cicd.pipeline.result",
                ]
            ),
            st.integers(0, 3),
        ),
        scalars,
        max_size=10,
    ),
    name=st.text(max_size=30),
    kind=st.sampled_from(list(SpanKind)),
    code=st.sampled_from(list(StatusCode)),
    description=st.none() | st.text(max_size=20),
    times=st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**53)),
    parent=st.sampled_from(["none", "local", "remote"]),
    with_event=st.booleans(),
)
def test_random_rows_are_what_python_makes(
    attributes: dict[Any, Any],
    name: str,
    kind: SpanKind,
    code: StatusCode,
    description: str | None,
    times: tuple[int, int],
    parent: str,
    with_event: bool,
) -> None:
    def build(tracer: trace.Tracer) -> None:
        context = otel_context.Context()
        if parent != "none":
            parent_context = SpanContext(
                9, 7, is_remote=parent == "remote", trace_flags=TraceFlags(1)
            )
            context = trace.set_span_in_context(NonRecordingSpan(parent_context))
        span = tracer.start_span(name, context=context, kind=kind, start_time=times[0])
        span.set_status(Status(code, description) if code is StatusCode.ERROR else Status(code))
        if with_event:
            span.add_event("e", {"n": 1})
        span.end(end_time=times[0] + times[1])

    (span,) = lean_spans(build)
    span._attributes = attributes  # type: ignore[attr-defined]
    try:
        expected: Any = span_row_python(span)
    except Exception as exc:  # e.g. a start past int64: the C row must refuse alike
        expected = type(exc)
    try:
        got: Any = span_row(span)
    except Exception as exc:
        got = type(exc)
    assert got == expected
