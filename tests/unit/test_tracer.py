"""The lean tracer records what the SDK would; the trace pipeline keeps or drops whole traces."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, TraceIdRatioBased
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from telemetry import schema
from telemetry.span_pipeline import SAMPLE_RATE, ExporterSink, OtlpSink, TailSampler, TracePipeline
from telemetry.tracer import LeanTracerProvider

RESOURCE = Resource.create({"service.name": "test"})


def scenario(provider: trace.TracerProvider) -> None:
    """Everything the bot does with spans: roots, children, links, events, errors, statuses."""
    tracer = provider.get_tracer("scenario", "1.0")
    with tracer.start_as_current_span(
        "message", context=Context(), attributes={"a": 1, "b": [1, 2], "none": None}
    ) as root:
        root.update_name("command ping")
        root.set_attribute("c", "x")
        root.set_attributes({"d": True, "e": 1.5, "f": ("x", "y")})
        root.add_event("evt", {"k": "v"}, timestamp=5)
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT) as child:
            child.set_status(Status(StatusCode.ERROR, "bad"))
            child.set_status(StatusCode.OK)  # later OK wins over ERROR, as in the SDK
        try:
            with tracer.start_as_current_span("fails"):
                raise ValueError("boom")
        except ValueError:
            pass
        other = tracer.start_span("linked", links=[Link(root.get_span_context(), {"why": "x"})])
        other.record_exception(RuntimeError("r"), {"extra": 1})
        other.end()
        root.set_status(StatusCode.UNSET)  # ignored, as in the SDK


def shape(spans: Sequence[ReadableSpan]) -> list[tuple[Any, ...]]:
    """What a backend shows of each span, ids replaced by span names."""
    names = {s.context.span_id: s.name for s in spans if s.context is not None}

    def events(span: ReadableSpan) -> list[tuple[str, dict[str, Any]]]:
        return [
            (e.name, {k: v for k, v in (e.attributes or {}).items() if k != "exception.stacktrace"})
            for e in span.events
        ]

    return sorted(
        (
            s.name,
            s.kind,
            names.get(s.parent.span_id) if s.parent else None,
            dict(s.attributes or {}),
            events(s),
            [(names.get(link.context.span_id), dict(link.attributes or {})) for link in s.links],
            (s.status.status_code, s.status.description),
            s.instrumentation_scope.name if s.instrumentation_scope else None,
            s.end_time is not None and s.start_time is not None and s.end_time >= s.start_time,
        )
        for s in spans
    )


def finished(provider: Any, run: Callable[[Any], None] = scenario) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    run(provider)
    return list(exporter.get_finished_spans())


def test_lean_spans_record_what_sdk_spans_record() -> None:
    sdk = finished(TracerProvider(resource=RESOURCE))
    lean = finished(LeanTracerProvider(RESOURCE))
    assert shape(lean) == shape(sdk)
    assert {s.context.trace_id for s in lean if s.context} == {lean[0].context.trace_id}  # type: ignore[union-attr]
    assert all(s.resource is RESOURCE for s in lean)


def test_an_ended_span_ignores_changes() -> None:
    def run(provider: Any) -> None:
        span = provider.get_tracer("t").start_span("s")
        span.end()
        span.set_attribute("late", 1)
        span.add_event("late")
        span.update_name("renamed")
        span.end()  # a second end is ignored too

    (span,) = finished(LeanTracerProvider(RESOURCE), run)
    assert span.name == "s" and "late" not in (span.attributes or {}) and not span.events


def test_the_configured_sampler_decides_for_roots_and_children_follow() -> None:
    (nothing) = finished(LeanTracerProvider(RESOURCE, sampler=ALWAYS_OFF))
    assert nothing == []
    half = finished(
        LeanTracerProvider(RESOURCE, sampler=TraceIdRatioBased(0.5)),
        lambda p: [scenario(p) for _ in range(200)],
    )
    roots = [s for s in half if s.parent is None and s.name == "command ping"]
    assert 60 < len(roots) < 140
    kept = {s.context.trace_id for s in roots if s.context}
    assert all(s.context.trace_id in kept for s in half if s.context)  # never half a trace


def test_sdk_disabled_records_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert finished(LeanTracerProvider(RESOURCE)) == []


def test_ids_stay_unique_when_the_global_random_is_reseeded() -> None:
    import random

    provider = LeanTracerProvider(RESOURCE)
    tracer = provider.get_tracer("t")
    ids = set()
    for _ in range(50):
        random.seed(7)
        ids.add(tracer.start_span("s", context=Context()).get_span_context().trace_id)
    assert len(ids) == 50


# -- the pipeline ------------------------------------------------------------------


class Collect(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.exported = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        self.exported.set()
        return SpanExportResult.SUCCESS


def piped(sampler: TailSampler) -> tuple[LeanTracerProvider, TracePipeline, Collect]:
    sink = Collect()
    pipeline = TracePipeline([ExporterSink(sink)], sampler=sampler, schedule_delay_s=60)
    provider = LeanTracerProvider(RESOURCE)
    provider.add_span_processor(pipeline)
    return provider, pipeline, sink


def message(provider: LeanTracerProvider, outcome: str, *, slow: bool = False) -> int:
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("command x", context=Context()) as root:
        with tracer.start_as_current_span("discord.send"):
            pass
        root.set_attribute(schema.OUTCOME, outcome)
    if slow:
        root._end_time = root._start_time + 5_000_000_000  # type: ignore[attr-defined]
    return root.get_span_context().trace_id


def test_the_tail_sampler_keeps_every_failure_and_one_in_n_ok_with_sample_rate() -> None:
    provider, pipeline, sink = piped(TailSampler(keep_ok_one_in=10, slow_ms=1000))
    failures = {message(provider, "error") for _ in range(20)}
    failures |= {message(provider, "bad_input") for _ in range(5)}
    ok = {message(provider, "ok") for _ in range(2000)}
    assert pipeline.force_flush(5000)
    kept = {s.context.trace_id for s in sink.spans if s.context}
    assert failures <= kept
    kept_ok = kept & ok
    assert 120 < len(kept_ok) < 280  # about 1 in 10
    for span in sink.spans:
        rate = (span.attributes or {}).get(SAMPLE_RATE)
        assert rate == (10 if span.context and span.context.trace_id in ok else None)
    # Whole traces: the send span of every kept trace came along, none of a dropped one.
    sends = {s.context.trace_id for s in sink.spans if s.name == "discord.send" and s.context}
    assert sends == kept
    assert pipeline.sampled_out == 2 * (2000 - len(kept_ok))
    assert pipeline.dropped == 0


def test_autocomplete_requests_are_sampled_like_ok_ones() -> None:
    provider, pipeline, sink = piped(TailSampler(keep_ok_one_in=10, slow_ms=1000))
    typed = {message(provider, "autocomplete") for _ in range(1000)}
    assert pipeline.force_flush(5000)
    kept = {s.context.trace_id for s in sink.spans if s.context} & typed
    assert 50 < len(kept) < 150  # about 1 in 10, each standing for 10
    assert {(s.attributes or {}).get(SAMPLE_RATE) for s in sink.spans} == {10}


def test_slow_ok_messages_are_always_kept() -> None:
    sampler = TailSampler(keep_ok_one_in=1_000_000, slow_ms=1000)
    provider = LeanTracerProvider(RESOURCE)
    assert sampler.rate(_ended_root(provider, seconds=5)) == 1
    assert sampler.rate(_ended_root(provider, seconds=0)) in (0, 1_000_000)


def _ended_root(provider: LeanTracerProvider, seconds: float) -> ReadableSpan:
    span = provider.get_tracer("t").start_span("command x", context=Context())
    span.set_attribute(schema.OUTCOME, "ok")
    span.end(end_time=span._start_time + int(seconds * 1e9))  # type: ignore[attr-defined]
    return span  # type: ignore[return-value]


def test_a_child_ending_after_its_root_follows_the_decision() -> None:
    provider, pipeline, sink = piped(TailSampler())
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("command x", context=Context()) as root:
        late = tracer.start_span("late child")
        root.set_attribute(schema.OUTCOME, "ok")
    late.end()
    assert pipeline.force_flush(5000)
    assert sorted(s.name for s in sink.spans) == ["command x", "late child"]


def test_a_failing_exporter_never_stops_the_flush_thread() -> None:
    class Broken(SpanExporter):
        calls = 0

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            Broken.calls += 1
            raise OSError("disk gone")

    collect = Collect()
    pipeline = TracePipeline([ExporterSink(Broken()), ExporterSink(collect)], schedule_delay_s=60)
    provider = LeanTracerProvider(RESOURCE)
    provider.add_span_processor(pipeline)
    for _ in range(2):
        message(provider, "ok")
        assert pipeline.force_flush(5000)
    assert Broken.calls == 2 and len(collect.spans) == 4


def test_the_pipeline_holds_a_bounded_number_of_spans() -> None:
    provider, pipeline, sink = piped(TailSampler())
    pipeline.max_pending = 10
    for _ in range(20):
        message(provider, "ok")
    assert pipeline.force_flush(5000)
    assert len(sink.spans) == 10 and pipeline.dropped == 30


def test_http_spans_are_children_of_the_current_span() -> None:
    """The context key the tracer reads is the API's own (a typo made every span a root)."""
    provider = LeanTracerProvider(RESOURCE)
    tracer = provider.get_tracer("t")
    outer = tracer.start_span("outer", context=Context())
    token = context_api.attach(trace.set_span_in_context(outer))
    try:
        inner = tracer.start_span("inner")
    finally:
        context_api.detach(token)
    assert inner.parent is not None  # type: ignore[attr-defined]
    assert inner.parent.span_id == outer.get_span_context().span_id  # type: ignore[attr-defined]


async def test_the_otlp_sink_sends_what_the_sdk_exporter_would_send() -> None:
    """Same spans, two pipelines: the SDK's exporter and ours send equal requests."""
    import asyncio

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from telemetry.otlp_exporter import WireSpanExporter
    from tests.fakes.otlp import OtlpReceiver

    async with OtlpReceiver() as theirs, OtlpReceiver() as ours:
        sdk = TracePipeline(
            [ExporterSink(OTLPSpanExporter(endpoint=theirs.endpoint + "/v1/traces"))],
            schedule_delay_s=60,
        )
        wire = TracePipeline(
            [OtlpSink(WireSpanExporter(ours.endpoint + "/v1/traces", {}, 10.0))],
            schedule_delay_s=60,
        )
        provider = LeanTracerProvider(RESOURCE)
        provider.add_span_processor(sdk)
        provider.add_span_processor(wire)
        for _ in range(3):
            scenario(provider)
        assert await asyncio.to_thread(sdk.force_flush, 10_000)
        assert await asyncio.to_thread(wire.force_flush, 10_000)
        (expected,) = theirs.bodies
        (sent,) = ours.bodies
        assert ExportTraceServiceRequest.FromString(sent) == ExportTraceServiceRequest.FromString(
            expected
        )
        assert len(ours.spans) == 12  # four spans a scenario


async def test_spans_reach_a_tls_collector_trusted_through_the_sdk_variable(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lean transport honours OTEL_EXPORTER_OTLP_CERTIFICATE as the SDK's default does."""
    import asyncio

    from bot.config import load_settings, telemetry_config
    from telemetry.setup import build_provider
    from tests.fakes.otlp import OtlpReceiver
    from tests.fakes.tls import make_certificate

    certificate = make_certificate(tmp_path)
    async with OtlpReceiver(ssl_context=certificate.server_context()) as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(certificate.cert_path))
        settings = load_settings(
            _env_file=None, span_store="off", otel_exporter_otlp_endpoint=receiver.endpoint
        )
        provider = build_provider(telemetry_config(settings))
        scenario(provider)
        assert await asyncio.to_thread(provider.force_flush, 10_000)
        assert {s.name for s in receiver.spans} == {"command ping", "child", "fails", "linked"}
        provider.shutdown()


def test_behind_a_proxy_the_sdk_default_transport_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.config import load_settings, telemetry_config
    from telemetry.setup import otlp_transport

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    proxied = otlp_transport(telemetry_config(load_settings(_env_file=None)))
    assert type(proxied).__name__ == "RequestsHTTPTransport"
    monkeypatch.delenv("HTTPS_PROXY")
    direct = otlp_transport(telemetry_config(load_settings(_env_file=None)))
    assert type(direct).__name__ == "Urllib3HTTPTransport"


def test_the_drop_summary_counts_every_span_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15: the summary said "dropped 3" when thousands were dropped."""
    import logging

    from telemetry.drops import QUEUE_LOGGER, ExportTrouble

    trouble = ExportTrouble(interval_s=3600)
    monkeypatch.setattr(logging.getLogger(QUEUE_LOGGER), "filters", [trouble])
    provider, pipeline, _ = piped(TailSampler())
    pipeline.max_pending = 10
    for _ in range(3339):
        message(provider, "ok")
    assert pipeline.dropped == 6668
    assert trouble.dropped_total == 6668


def test_a_span_that_cannot_be_encoded_loses_only_itself() -> None:
    """Issue 15: one span with a bad timestamp lost its whole export batch."""
    import asyncio

    from telemetry.otlp_exporter import WireSpanExporter
    from tests.fakes.otlp import OtlpReceiver

    spans = finished(LeanTracerProvider(RESOURCE))
    spans[1]._start_time = -5  # type: ignore[attr-defined]  # a clock gone wrong

    async def export() -> list[str]:
        async with OtlpReceiver() as receiver:
            exporter = WireSpanExporter(receiver.endpoint + "/v1/traces", {}, 10.0)
            await asyncio.to_thread(exporter.export, spans)
            # And through the pipeline's OTLP sink, a trace at a time.
            sink = OtlpSink(exporter)
            sink.add(spans)
            await asyncio.to_thread(sink.flush)
            return [s.name for s in receiver.spans]

    names = asyncio.run(export())
    expected = sorted(s.name for i, s in enumerate(spans) if i != 1)
    assert sorted(names) == sorted(expected * 2)


def test_a_module_tracer_made_before_the_provider_records_once_it_is_set() -> None:
    """Module-level tracers exist before ``chatops run`` sets the provider; their spans are
    no-ops until then, and afterwards go straight to the lean tracer (no API proxy)."""
    code = """
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from telemetry.tracer import LeanTracer, LeanTracerProvider, module_tracer

tracer = module_tracer("early")
with tracer.start_as_current_span("before") as span:
    assert not span.is_recording()
exporter = InMemorySpanExporter()
provider = LeanTracerProvider(Resource.create({}))
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
with tracer.start_as_current_span("after"):
    tracer.start_span("child").end()
assert isinstance(tracer.start_as_current_span.__self__, LeanTracer)
assert [s.name for s in exporter.get_finished_spans()] == ["child", "after"]
assert exporter.get_finished_spans()[0].instrumentation_scope.name == "early"
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
