"""µs per span: the SDK's OTLP protobuf encoder against telemetry.otlp_wire.

Run: python tests/bench/bench_otlp_wire.py [--rounds N]

Each message makes three real SDK spans as the bot does: the root (12 attributes),
the send span (5) and its HTTP client span (8), under a resource of 5 attributes.
A pool of 2,000 messages is made once; every timed pass walks the pool in batches
of 1, 64 and 512 spans, so values unique to a message (message id, response text)
are not found in the encoder's value cache again, as in the bot, while attribute
keys and repeated values (command, guild, status) are. Rows are the median (and
min–max) of interleaved rounds of this process's CPU time (steadier than wall time on a
shared machine); "encode_span + builder" is the span pipeline's
path (each span encoded as it ends, joined into a request at export time).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from telemetry.otlp_wire import RequestBuilder, encode_request, encode_span

MESSAGES = 2_000
BATCHES = (1, 64, 512)


def make_spans(messages: int) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    resource = Resource(
        {
            "service.name": "chatops",
            "service.version": "0.1.0",
            "telemetry.sdk.language": "python",
            "telemetry.sdk.name": "opentelemetry",
            "telemetry.sdk.version": "1.45.1",
        }
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("telemetry.spans", "0.1.0")
    http = provider.get_tracer("opentelemetry.instrumentation.aiohttp_client", "0.66b1")
    commands = ("ping", "help", "about", "aci status", "catfact")
    for i in range(messages):
        command = commands[i % len(commands)]
        fields = {
            "app.command": command,
            "discord.guild.id": "1094023402343",
            "discord.author.id": str(4_000_000 + i % 37),
        }
        with tracer.start_as_current_span(
            f"command {command}",
            kind=SpanKind.SERVER,
            attributes={
                "discord.message.id": str(1_200_000_000_000_000_000 + i),
                "discord.channel.id": "1094023402399",
                "discord.guild.name": "ops",
                "discord.author.name": f"user{i % 37}",
                "discord.shard.id": 0,
                "app.command.args": "" if i % 3 else "web --now",
                **fields,
            },
        ) as root:
            root.set_attribute("app.outcome", "ok")
            root.set_attribute("app.response", f"pong {i} ms")
            root.set_attribute("messaging.message.body.size", 4 + i % 9)
            with tracer.start_as_current_span("discord.send", kind=SpanKind.CLIENT) as send:
                send.set_attributes(fields)
                send.set_attribute("app.response", f"pong {i} ms")
                send.set_attribute("discord.channel.id", "1094023402399")
                with http.start_as_current_span("POST", kind=SpanKind.CLIENT) as post:
                    post.set_attributes(fields)
                    post.set_attribute("http.request.method", "POST")
                    post.set_attribute(
                        "url.full", "https://discord.test/api/v10/channels/1094023402399/messages"
                    )
                    post.set_attribute("server.address", "discord.test")
                    post.set_attribute("server.port", 443)
                    post.set_attribute("http.response.status_code", 200)
    spans: list[ReadableSpan] = list(exporter.get_finished_spans())
    return spans


def sdk(batch: Sequence[ReadableSpan]) -> bytes:
    return encode_spans(batch).SerializeToString()  # type: ignore[no-any-return]


def pipeline(batch: Sequence[ReadableSpan]) -> bytes:
    builder = RequestBuilder()
    for span in batch:  # in the pipeline this happens in on_end, one span at a time
        builder.add_encoded(span.resource, span.instrumentation_scope, encode_span(span))
    return builder.build()


def us_per_span(
    encode: Callable[[Sequence[ReadableSpan]], bytes], batches: list[list[ReadableSpan]]
) -> float:
    count = sum(len(b) for b in batches)
    started = time.process_time()
    for batch in batches:
        encode(batch)
    return (time.process_time() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    spans = make_spans(MESSAGES)
    encoders: dict[str, Callable[[Sequence[ReadableSpan]], bytes]] = {
        "SDK encode_spans + SerializeToString": sdk,
        "otlp_wire.encode_request": encode_request,
        "otlp_wire encode_span + builder": pipeline,
    }
    print(f"{len(spans)} spans ({MESSAGES} messages × 3), {args.rounds} interleaved rounds")
    print(f"{'batch':>5}  {'encoder':<38} {'µs/span median':>15}  {'min–max':>13}  vs SDK")
    for size in BATCHES:
        batches = [spans[i : i + size] for i in range(0, len(spans), size)]
        if size == 1:
            batches = batches[:1500]
        for batch in batches[:3]:  # the same request either way
            assert encode_request(batch) == sdk(batch) == pipeline(batch)
        results: dict[str, list[float]] = {name: [] for name in encoders}
        for _ in range(args.rounds):
            for name, encode in encoders.items():
                results[name].append(us_per_span(encode, batches))
        base = statistics.median(results["SDK encode_spans + SerializeToString"])
        for name, times in results.items():
            median = statistics.median(times)
            spread = f"{min(times):5.1f}–{max(times):5.1f}"
            print(f"{size:>5}  {name:<38} {median:15.1f}  {spread:>13}  {base / median:5.1f}×")


if __name__ == "__main__":
    main()
