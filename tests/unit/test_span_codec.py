"""The compiled codec writes exactly what the Python code writes: OTLP bytes and store rows.

``telemetry/_span_codec.c`` encodes the spans a message makes, and makes their store
rows, and hands every other span to ``otlp_wire.encode_span_python`` or
``store.span_row_python``; each claim here compares the two (the OTLP bytes also with
the SDK's own encoding, by decoding both).
"""

from __future__ import annotations

import gc
import json
import json.encoder
import logging
import math
import subprocess
import sys
import textwrap
import tracemalloc
from collections.abc import Callable, Iterator
from enum import IntEnum
from pathlib import Path
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
from telemetry.tracer import EMPTY_TRACE_STATE, LeanSpan, LeanTracerProvider


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


def _configure_store(
    fallback: Any, encode_json_str: Callable[[str], Any] = json.encoder.encode_basestring_ascii
) -> None:
    _span_codec.configure_store(
        fallback,
        store._service,
        encode_json_str,
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


# --- what random spans do not reach: odd objects, reentrancy, reconfiguring, leaks ------------


def one_span(attributes: dict[str, Any] | None = None) -> LeanSpan:
    def build(tracer: trace.Tracer) -> None:
        root = otel_context.Context()
        with tracer.start_as_current_span("s", context=root, attributes=attributes):
            pass

    (span,) = lean_spans(build)
    assert type(span) is LeanSpan
    return span


def outcome_of(make: Callable[..., Any], *args: Any) -> Any:
    try:
        return make(*args)
    except Exception as exc:
        return type(exc)


def test_a_parent_that_is_a_short_tuple_is_refused_as_python_refuses_it() -> None:
    # The C row read the parent's span id and is_remote past the end of the tuple (a crash).
    span = one_span()
    for parent in [(), (1,), (1, 2)]:
        span._parent = parent  # type: ignore[assignment]
        assert outcome_of(span_row, span) is AttributeError
        assert outcome_of(span_row_python, span) is AttributeError


def test_rows_with_a_negative_start_or_a_duration_past_2_53_ns_are_pythons() -> None:
    span = one_span()
    span._start_time, span._end_time = -5, 2**63 - 1  # end - start overflowed int64 in C
    assert span_row(span) == span_row_python(span)
    # the bucket of a 203-day span: float(duration) / 1000 rounded twice, Python's once
    span._start_time, span._end_time = 1, 1 + 17_592_186_044_415_957
    assert span_row(span)[5:8] == span_row_python(span)[5:8] == (1, 17_592_186_044_415_957, 88)


class Shouting(str):
    """A str subclass whose own methods Python calls: encode, len, truth."""

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return str.encode(self.upper(), encoding, errors)


def test_str_subclasses_are_encoded_with_their_own_methods_as_python_does() -> None:
    span = one_span({"k": "v"})
    span._name = Shouting("name")
    assert encode_span(span) == encode_span_python(span)
    span = one_span()
    span._attributes = {Shouting("key"): "v"}
    assert encode_span(span) == encode_span_python(span)
    span = one_span()
    span._status = Status(StatusCode.ERROR, Shouting("failed"))
    assert encode_span(span) == encode_span_python(span)


def test_an_attribute_values_str_runs_as_often_as_in_python() -> None:
    # C ran str() of app.outcome's value, then found the value unplain and handed the
    # span to Python, which ran it again: a __str__ with effects ran twice.
    calls: list[str] = []

    class Outcome:
        def __str__(self) -> str:
            calls.append("str")
            return "ok"

    span = one_span({"app.outcome": "x"})
    cast_attributes(span)["app.outcome"] = Outcome()
    span_row_python(span)
    in_python = len(calls)
    calls.clear()
    span_row(span)
    assert len(calls) == in_python


def test_the_service_cache_never_pairs_a_resource_with_another_services_name() -> None:
    # Releasing the resource the cache held can run a finalizer; one that makes a row for
    # a span of the new resource must get the new resource's service, not the old one's.
    seen: list[str | None] = []

    class Res:
        def __init__(self, service: str, then: LeanSpan | None = None) -> None:
            self.attributes = {"service.name": service}
            self.then = then

        def __del__(self) -> None:
            if self.then is not None:
                seen.append(span_row(self.then)[15])

    old_span, new_span, inner_span = one_span(), one_span(), one_span()
    new = Res("new")
    inner_span._resource = new
    old_span._resource = Res("old", then=inner_span)
    assert span_row(old_span)[15] == "old"
    old_span._resource = None  # the cache holds the only reference to the old resource
    new_span._resource = new
    assert span_row(new_span)[15] == "new"
    assert seen == ["new"]


class OtherSpan:
    """A span type with the lean span's slots at other offsets."""

    __slots__ = (
        *(f"_a{i:02d}" for i in range(11)),
        "_attributes",
        "_context",
        "_end_time",
        "_events",
        "_kind",
        "_links",
        "_name",
        "_parent",
        "_resource",
        "_start_time",
        "_status",
    )


KINDS = tuple(sorted(SpanKind, key=lambda kind: kind.value))
CODES = tuple(sorted(StatusCode, key=lambda code: code.value))


def test_configure_called_while_a_span_is_encoded_does_not_move_its_fields(
    fallbacks: list[ReadableSpan],
) -> None:
    # Python code runs mid-span (here is_remote's truth); the encoder read the rest of the
    # span at the offsets of the type configured meanwhile: past the object, a crash.
    class Remote:
        def __bool__(self) -> bool:
            _span_codec.configure(OtherSpan, KINDS, CODES, EMPTY_TRACE_STATE)
            return False

    span = one_span({"k": "v"})
    span._parent = SpanContext(1, 2, is_remote=Remote())  # type: ignore[arg-type]
    try:
        compiled = encode_span(span)
    finally:
        _span_codec.configure(LeanSpan, KINDS, CODES, EMPTY_TRACE_STATE)
    assert compiled == encode_span_python(span)
    assert fallbacks == []


def test_a_configure_that_fails_changes_nothing(fallbacks: list[ReadableSpan]) -> None:
    span = one_span({"k": "v"})
    with pytest.raises(TypeError):
        _span_codec.configure(OtherSpan, KINDS * 2, CODES, EMPTY_TRACE_STATE)  # 10 kinds
    with pytest.raises(TypeError):
        _span_codec.configure_store(
            span_row_python, store._service, json.encoder.encode_basestring_ascii,
            tuple(kind.name for kind in KINDS), ("x",) * 9, "a", "b", "c", "d", "e",
        )  # fmt: skip
    assert encode_span(span) == encode_span_python(span)
    assert fallbacks == []  # still read as a lean span, at the lean span's offsets
    assert span_row(span) == span_row_python(span)


def test_configure_takes_only_slots_of_the_span_type_itself() -> None:
    # LeanSpan's own slot descriptors set on a small class: their offsets are LeanSpan's,
    # past the end of this class's instances.
    names = [name for name in OtherSpan.__slots__ if name in LeanSpan.__dict__]
    assert len(names) == 11
    borrowed = type("Borrowed", (), {name: LeanSpan.__dict__[name] for name in names})
    try:
        with pytest.raises(TypeError, match="not a slot"):
            _span_codec.configure(borrowed, KINDS, CODES, EMPTY_TRACE_STATE)
    finally:
        _span_codec.configure(LeanSpan, KINDS, CODES, EMPTY_TRACE_STATE)


def test_reconfiguring_releases_what_it_replaces() -> None:
    kind_names = tuple(kind.name for kind in KINDS)

    def counts() -> list[int]:
        gc.collect()
        return [sys.getrefcount(x) for x in (*kind_names, *KINDS, LeanSpan, span_row_python)]

    for _ in range(10):
        _configure_store(span_row_python)
        _span_codec.configure(LeanSpan, KINDS, CODES, EMPTY_TRACE_STATE)
    before = counts()
    for _ in range(1000):
        _configure_store(span_row_python)
        _span_codec.configure(LeanSpan, KINDS, CODES, EMPTY_TRACE_STATE)
    assert counts() == before


def test_a_json_str_encoder_that_is_not_ascii_sends_the_row_to_python() -> None:
    # The row's JSON is copied into an ASCII str: a non-ASCII (or non-str) result of the
    # configured encoder was copied as raw UCS-2/UCS-4 (or object) bytes.
    span = one_span({"name": "snow ☃"})
    expected = span_row_python(span)
    for encoder in [lambda s: json.dumps(s, ensure_ascii=False), lambda s: b"bytes"]:
        _configure_store(span_row_python, encoder)
        try:
            assert span_row(span) == expected
        finally:
            _configure_store(span_row_python)


def test_encoding_a_span_many_times_leaks_no_reference_and_no_memory() -> None:
    spans = lean_spans(message_trace)
    for span in spans:
        cast_attributes(span)["app.long"] = "y" * 5000  # past the 1 KiB inline buffer
    long_span = spans[-1]
    fields = [
        long_span._attributes,
        long_span._context,
        long_span._name,
        long_span._status,
        long_span._resource,
        *long_span._attributes.values(),  # type: ignore[union-attr]
    ]
    # not the objects the whole interpreter shares (small ints, True, interned names)
    fields = [field for field in fields if sys.getrefcount(field) < 100]
    assert len(fields) >= 8

    def run(times: int) -> None:
        for _ in range(times):
            for span in spans:
                encode_span(span)
                span_row(span)

    run(1000)
    gc.collect()
    references = [sys.getrefcount(field) for field in fields]
    tracemalloc.start()
    try:
        run(1000)
        gc.collect()
        first, _ = tracemalloc.get_traced_memory()
        run(10_000)
        gc.collect()
        last, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [sys.getrefcount(field) for field in fields] == references
    assert last - first < 64 * 1024


class Level(IntEnum):
    HIGH = 3


def test_long_strings_and_int_subclasses_encode_as_python_does(
    fallbacks: list[ReadableSpan],
) -> None:
    # lengths whose varints take 1, 2 and 3 bytes, past the 1 KiB inline buffer
    for size in [127, 128, 1500, 16_383, 16_384, 70_000]:
        text = ("snow ☃ " * size)[:size]
        span = one_span({"k" * size: text, "flag": True, "n": 1})
        span._name = text
        span._status = Status(StatusCode.ERROR, text)
        assert encode_span(span) == encode_span_python(span)
        assert span_row(span) == span_row_python(span)
    assert fallbacks == []
    span = one_span({"level": Level.HIGH, "yes": True, "one": 1})
    assert encode_span(span) == encode_span_python(span)
    assert span_row(span) == span_row_python(span)


def test_an_attribute_dict_emptied_while_its_row_is_made_is_not_read_after_free() -> None:
    # Encoding a str is a call; one that empties the dict freed the value the row went on
    # to read. Run under -X dev, whose allocator overwrites freed memory.
    script = textwrap.dedent(
        """
        import json.encoder, sys
        sys.path.insert(0, "tests/unit")
        from test_span_codec import _configure_store, cast_attributes, one_span
        from telemetry.store import span_row, span_row_python

        span = one_span()
        attributes = cast_attributes(span)
        attributes.clear()
        attributes["k"] = "".join(["value-", "x" * 40])  # held by the dict alone

        def encode(text):
            attributes.clear()
            return json.encoder.encode_basestring_ascii(text)

        _configure_store(span_row_python, encode)
        print(span_row(span)[16])
        """
    )
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '{"k": "value-' + "x" * 40 + '"}'


def test_unset_slots_and_subclasses_are_handled_as_python_handles_them() -> None:
    for slot in ["_name", "_context", "_attributes", "_status", "_resource", "_events"]:
        span = one_span({"k": "v"})
        delattr(span, slot)
        assert outcome_of(encode_span, span) == outcome_of(encode_span_python, span)
        assert outcome_of(span_row, span) == outcome_of(span_row_python, span)

    class Renamed(LeanSpan):
        __slots__ = ()
        name = property(lambda self: "renamed")  # type: ignore[assignment]

    span = one_span({"app.command": "ping"})
    renamed = object.__new__(Renamed)
    for slot in LeanSpan.__slots__:
        setattr(renamed, slot, getattr(span, slot))
    assert encode_span(renamed) == encode_span_python(renamed) != encode_span(span)
    assert span_row(renamed) == span_row_python(renamed)
    assert span_row(renamed)[3] == "renamed"
