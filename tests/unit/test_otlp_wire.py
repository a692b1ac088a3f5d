"""The direct OTLP wire encoder decodes to exactly what the SDK's encoder produces."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from telemetry import otlp_wire
from telemetry.otlp_wire import RequestBuilder, encode_request, encode_span, request_from_encoded

# --- helpers ----------------------------------------------------------------------------------


def sdk_bytes(spans: Sequence[ReadableSpan]) -> bytes:
    return encode_spans(spans).SerializeToString()  # type: ignore[no-any-return]


def parse(data: bytes) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest.FromString(data)  # type: ignore[no-any-return]


def assert_same(spans: Sequence[ReadableSpan], ours: bytes | None = None) -> None:
    """Both encodings decode to equal messages (the claim); the bytes match too (in practice)."""
    theirs = sdk_bytes(spans)
    ours = encode_request(spans) if ours is None else ours
    assert parse(ours) == parse(theirs)
    assert ours == theirs


class Recorder:
    """Tracer providers whose finished spans land in one list, in end order."""

    def __init__(self, limits: SpanLimits | None = None) -> None:
        self.exporter = InMemorySpanExporter()
        self.limits = limits

    def provider(self, resource: Resource) -> TracerProvider:
        provider = TracerProvider(resource=resource, span_limits=self.limits)
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        return provider

    @property
    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()  # type: ignore[no-any-return]


EVERY_TYPE: dict[str, Any] = {
    "str": "plain",
    "str.empty": "",
    "str.unicode": "héllo ☃ 𝄞 日本",
    "str.long": "x" * 300,
    "str.126": "y" * 126,
    "str.127": "y" * 127,
    "str.128": "y" * 128,
    "bool.true": True,
    "bool.false": False,
    "int.zero": 0,
    "int.small": 127,
    "int.128": 128,
    "int.large": 2**63 - 1,
    "int.negative": -1,
    "int.min": -(2**63),
    "float": 3.25,
    "float.zero": 0.0,
    "float.negative_zero": -0.0,
    "float.negative": -1e300,
    "float.inf": math.inf,
    "list.str": ["a", "", "ü"],
    "list.bool": [True, False],
    "list.int": [0, -5, 2**40],
    "list.float": [1.5, -2.0],
    "list.empty": [],
    "tuple.str": ("x", "y"),
}


def remote_parent(trace_state: TraceState | None = None) -> otel_context.Context:
    parent = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=trace_state,
    )
    return trace.set_span_in_context(NonRecordingSpan(parent))


def rich_batch() -> tuple[ReadableSpan, ...]:
    """Spans covering everything the SDK encodes, over three resources and several scopes."""
    recorder = Recorder(
        SpanLimits(
            max_attributes=40,
            max_events=2,
            max_links=2,
            max_event_attributes=1,
            max_link_attributes=1,
        )
    )
    service = Resource(
        {"service.name": "chatops", "service.version": "1.2.3", "host.pid": 42, "ok": True},
        schema_url="https://opentelemetry.io/schemas/1.26.0",
    )
    worker = Resource({"service.name": "worker", "weights": [1.5, 2.5]})
    empty = Resource({})
    first, second, third = (recorder.provider(r) for r in (service, worker, empty))
    app = first.get_tracer(
        "app", "0.1", schema_url="https://example.test/schema", attributes={"scope.attr": "v"}
    )
    bare = first.get_tracer("bare")
    other = second.get_tracer("other", "9")

    with app.start_as_current_span("root", kind=SpanKind.SERVER, attributes=EVERY_TYPE) as root:
        root.add_event("started", {"n": 1, "tags": ["a", "b"]})
        root.add_event("no attributes")
        root.add_event("third; the first is dropped", {"x": 1, "y": 2})  # y kept
        root.set_status(Status(StatusCode.ERROR, "boom: it broke"))
        for kind in SpanKind:
            with bare.start_as_current_span(f"child {kind.name}", kind=kind) as child:
                child.set_attribute("kind", kind.name)
        with app.start_as_current_span("ok") as ok:
            ok.set_status(Status(StatusCode.OK))
        with app.start_as_current_span("error without description") as err:
            err.set_status(Status(StatusCode.ERROR))
        links = [
            Link(root.get_span_context()),  # the oldest, dropped over the limit
            Link(SpanContext(0xABC, 0xDEF, is_remote=True)),
            Link(root.get_span_context(), {"link.attr": 7, "why": "follows"}),  # one dropped
        ]
        with other.start_as_current_span("linked", links=links, kind=SpanKind.CONSUMER):
            pass
    ts = TraceState([("vendor", "abc"), ("other", "1-2")])
    with other.start_as_current_span("remote child", context=remote_parent(ts)) as rc:
        rc.set_attributes({f"a{i}": i for i in range(45)})  # 5 dropped
        with other.start_as_current_span("grandchild", links=[Link(rc.get_span_context())]):
            pass
        remote_link = NonRecordingSpan(
            SpanContext(1, 2, is_remote=True, trace_state=TraceState([("k", "v")]))
        ).get_span_context()
        with other.start_as_current_span("remote link", links=[Link(remote_link, {"r": True})]):
            pass
    with third.get_tracer("").start_as_current_span(""):
        pass
    with app.start_as_current_span("back to the first resource", context=otel_context.Context()):
        pass
    return recorder.spans


# --- the claims -------------------------------------------------------------------------------


def test_field_numbers_match_the_generated_descriptors() -> None:
    messages: dict[str, Any] = {
        "ExportTraceServiceRequest": ExportTraceServiceRequest,
        "ResourceSpans": trace_pb2.ResourceSpans,
        "ScopeSpans": trace_pb2.ScopeSpans,
        "Resource": resource_pb2.Resource,
        "InstrumentationScope": common_pb2.InstrumentationScope,
        "Span": trace_pb2.Span,
        "Event": trace_pb2.Span.Event,
        "Link": trace_pb2.Span.Link,
        "Status": trace_pb2.Status,
        "KeyValue": common_pb2.KeyValue,
        "AnyValue": common_pb2.AnyValue,
        "ArrayValue": common_pb2.ArrayValue,
        "KeyValueList": common_pb2.KeyValueList,
    }
    assert set(messages) == set(otlp_wire.FIELDS)
    # fields the SDK's encoder never sets, so neither do we
    never_set = {
        "Resource": {"dropped_attributes_count", "entity_refs"},
        "InstrumentationScope": {"dropped_attributes_count"},
        "Link": {"trace_state"},
        # string-table indexes, used by the profiles signal only
        "KeyValue": {"key_strindex"},
        "AnyValue": {"string_value_strindex"},
    }
    for name, message in messages.items():
        fields = message.DESCRIPTOR.fields_by_name
        ours = otlp_wire.FIELDS[name]
        for field, number in ours.items():
            assert fields[field].number == number, f"{name}.{field}"
        assert set(fields) - set(ours) <= never_set.get(name, set()), name


def test_a_batch_with_everything_decodes_equal_to_the_sdk() -> None:
    spans = rich_batch()
    request = parse(encode_request(spans))
    # the batch really covers what it claims to
    assert len(request.resource_spans) == 3
    assert len(request.resource_spans[0].scope_spans) == 2
    every = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert {s.kind for s in every} >= set(range(1, 6))
    assert any(s.dropped_attributes_count for s in every)
    assert any(s.dropped_events_count for s in every)
    assert any(s.dropped_links_count for s in every)
    assert any(e.dropped_attributes_count for s in every for e in s.events)
    assert any(link.dropped_attributes_count for s in every for link in s.links)
    assert any(link.flags == 0x300 for s in every for link in s.links)
    assert any(s.trace_state == "vendor=abc,other=1-2" for s in every)
    assert any(s.flags == 0x300 for s in every)
    assert {s.status.code for s in every} == {0, 1, 2}
    assert_same(spans)


def test_single_spans_and_empty_batches() -> None:
    spans = rich_batch()
    for span in spans:
        assert_same([span])
    assert encode_request([]) == sdk_bytes([]) == b""


def test_spans_encoded_one_at_a_time_and_joined_later() -> None:
    spans = rich_batch()
    builder = RequestBuilder()
    for span in spans:
        builder.add_encoded(span.resource, span.instrumentation_scope, encode_span(span))
    assert len(builder) == len(spans)
    assert_same(spans, builder.build())
    builder.clear()
    assert builder.build() == b""
    builder.add(spans[0])
    assert_same(spans[:1], builder.build())

    pairs: list[tuple[tuple[Any, Any], list[bytes]]] = []
    for span in spans:
        pairs.append(((span.resource, span.instrumentation_scope), [encode_span(span)]))
    assert_same(spans, request_from_encoded(pairs))

    grouped: dict[tuple[Any, Any], list[bytes]] = {}
    for span in spans:
        key = (span.resource, span.instrumentation_scope)
        grouped.setdefault(key, []).append(encode_span(span))
    # a dict changes the order of spans to group order; the SDK then agrees
    in_group_order = sorted(
        spans, key=lambda s: list(grouped).index((s.resource, s.instrumentation_scope))
    )
    assert_same(in_group_order, request_from_encoded(grouped))


def test_one_span_message_is_a_span() -> None:
    span = rich_batch()[0]
    message = trace_pb2.Span.FromString(encode_span(span))
    assert message == parse(sdk_bytes([span])).resource_spans[0].scope_spans[0].spans[0]


def test_equal_resources_and_scopes_group_like_the_sdk() -> None:
    """The SDK groups by ``==``: equal objects merge, under the first one's encoding."""
    recorder = Recorder()
    a = recorder.provider(Resource({"service.name": "s", "x": 1}))
    b = recorder.provider(Resource({"x": 1, "service.name": "s"}))  # equal, other order
    c = recorder.provider(Resource({"service.name": "s", "x": 1}, schema_url="u"))  # not equal
    for provider in (b, a, c, a, b):
        tracer = provider.get_tracer("t", "1", attributes={"p": 1, "q": 2})
        with tracer.start_as_current_span("s"):
            pass
        # an equal scope with its attributes in another order; and one that differs
        with provider.get_tracer("t", "1", attributes={"q": 2, "p": 1}).start_as_current_span("s"):
            pass
        with provider.get_tracer("t", "1", attributes={"p": 2}).start_as_current_span("s"):
            pass
    spans = recorder.spans
    assert len(parse(encode_request(spans)).resource_spans) == 2
    assert_same(spans)
    assert_same(spans[::-1])
    assert_same(spans[3:])


def test_resources_are_encoded_and_hashed_once_not_per_span() -> None:
    class CountingResource(Resource):
        hashes = 0

        def __hash__(self) -> int:
            CountingResource.hashes += 1
            return super().__hash__()

    recorder = Recorder()
    tracer = recorder.provider(CountingResource({"service.name": "counted"})).get_tracer("t")
    for _ in range(50):
        with tracer.start_as_current_span("s"):
            pass
    encode_request(recorder.spans)
    encode_request(recorder.spans)
    assert CountingResource.hashes <= 1
    CountingResource.hashes = 0
    sdk_bytes(recorder.spans)
    assert CountingResource.hashes >= 50  # what this module saves


def test_values_the_sdk_accepts_beyond_span_attributes(caplog: pytest.LogCaptureFixture) -> None:
    """Resources, scopes and hand-made spans can hold what span attributes may not."""

    class Weird:
        pass

    odd: dict[Any, Any] = {
        "none": None,
        "bytes": b"\x00\xff",
        "bytes.empty": b"",
        "bytearray": bytearray(b"ab"),  # not bytes: a Sequence of ints
        "mixed": [1, "two", 3.0, None, True, b"x", [1, [2]], {"k": "v"}],
        "nested": {"a": {"b": [1, 2]}, 3: "int key", "n": None},
        "empty.map": {},
        "int.too.big": 2**63,  # the SDK logs and drops the key
        "int.too.small": -(2**63) - 1,
        "list.with.too.big": [1, 2**64],
        "weird": Weird(),
        7: "a non-str key",
        "after the bad ones": "kept",
        "surrogate \ud800": "dropped key",
        "surrogate value": "dropped \udfff",
    }

    class OddResource(Resource):
        # the SDK's hash JSON-encodes the attributes, which these defeat
        __hash__ = object.__hash__

    resource = OddResource({})
    resource._attributes = odd  # type: ignore[assignment]  # past the SDK's validation
    scope = InstrumentationScope("s", "v", "schema", None)
    scope._attributes = odd  # type: ignore[assignment]
    context = SpanContext(5, 6, is_remote=False)
    span = ReadableSpan(
        name="hand made",
        context=context,
        parent=SpanContext(5, 0, is_remote=True),
        resource=resource,
        attributes=odd,
        events=[Event("e", odd, timestamp=10), Event("", None, timestamp=0)],
        links=[Link(SpanContext(1, 2, is_remote=True), odd)],
        kind=SpanKind.PRODUCER,
        instrumentation_scope=scope,
        status=Status(StatusCode.UNSET),
        start_time=0,
        end_time=None,
    )
    no_scope = ReadableSpan(name="no scope", context=context, resource=resource)
    with caplog.at_level(logging.CRITICAL):
        assert_same([span, no_scope])
        assert_same([no_scope, span])
    message = parse(encode_request([span])).resource_spans[0].scope_spans[0].spans[0]
    keys = [kv.key for kv in message.attributes]
    assert "none" in keys and "after the bad ones" in keys
    assert "int.too.big" not in keys and "weird" not in keys


def test_nan_gives_the_same_bytes() -> None:
    """NaN != NaN, so decoded messages with one never compare equal; the bytes do."""
    span = ReadableSpan(
        name="nan",
        context=SpanContext(1, 2, is_remote=False),
        resource=Resource({}),
        attributes={"nan": math.nan, "nans": [math.nan, -math.nan]},
    )
    assert encode_request([span]) == sdk_bytes([span])


def test_a_wrong_field_makes_the_comparison_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: the span name written as field 6 instead of 5."""
    spans = rich_batch()
    monkeypatch.setattr(otlp_wire, "_SPAN_NAME", otlp_wire._tag(6, otlp_wire._LEN))
    theirs = parse(sdk_bytes(spans))
    try:
        ours = parse(encode_request(spans))
    except Exception:  # a decode error fails the comparison too
        return
    assert ours != theirs


def test_the_module_does_not_import_discord() -> None:
    code = "import sys, telemetry.otlp_wire; sys.exit('discord' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- property: random attribute dictionaries --------------------------------------------------

keys = st.text(max_size=12)
scalars = st.one_of(
    st.text(max_size=140),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(),  # mostly in range; out of range ones are dropped by both
    st.floats(allow_nan=False),
    st.binary(max_size=20),
    st.none(),
)
homogeneous = st.one_of(
    st.lists(st.text(max_size=8), max_size=4),
    st.lists(st.booleans(), max_size=4),
    st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=4),
    st.lists(st.floats(allow_nan=False), max_size=4),
)
values = st.recursive(
    st.one_of(scalars, homogeneous),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
attribute_dicts = st.dictionaries(keys, values, max_size=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    span_attributes=attribute_dicts,
    event_attributes=attribute_dicts,
    resource_attributes=attribute_dicts,
    name=st.text(max_size=30),
    kind=st.sampled_from(list(SpanKind)),
    code=st.sampled_from(list(StatusCode)),
    description=st.none() | st.text(max_size=20),
    times=st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)),
)
def test_random_attributes_decode_equal(
    span_attributes: dict[str, Any],
    event_attributes: dict[str, Any],
    resource_attributes: dict[str, Any],
    name: str,
    kind: SpanKind,
    code: StatusCode,
    description: str | None,
    times: tuple[int, int],
) -> None:
    resource = Resource({})
    resource._attributes = resource_attributes  # type: ignore[assignment]
    span = ReadableSpan(
        name=name,
        context=SpanContext(2**128 - 1, 2**64 - 1, is_remote=False),
        parent=None,
        resource=resource,
        attributes=span_attributes,
        events=[Event("event", event_attributes, timestamp=times[0])],
        links=[Link(SpanContext(3, 4, is_remote=False), event_attributes)],
        kind=kind,
        instrumentation_scope=InstrumentationScope("scope", attributes=None),
        status=Status(code, description) if code is StatusCode.ERROR else Status(code),
        start_time=times[0],
        end_time=times[1],
    )
    logging.disable(logging.CRITICAL)
    try:
        assert_same([span, span])
    finally:
        logging.disable(logging.NOTSET)


@pytest.fixture(autouse=True)
def _no_leaked_context() -> Iterator[None]:
    token = otel_context.attach(otel_context.Context())
    yield
    otel_context.detach(token)
