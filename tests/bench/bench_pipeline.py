"""What one message's trace costs the tracing pipeline alone, old design against new.

Run as ``python tests/bench/bench_pipeline.py [--messages N] [--rounds R]``; prints
µs of this process's CPU (every thread: the flush thread counts) per message
trace, medians over interleaved rounds. Asserts nothing.

A message trace here is what ``!ping`` made when this benchmark was written: a
root span with the message's attributes and trace fields, a ``discord.send`` span
and an HTTP CLIENT span under it (the bot now records a reply's request on its
send span, one span fewer; the trace is kept as it was so the rows compare the
pipelines on the same work). No Discord, no bot: only the spans, so the differences between rows
are the pipeline's, without the noise of a whole bot on a shared machine
(``bench_overhead.py`` measures the whole bot). The OTLP receiver is a separate
process that keeps the bodies and decodes them at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from opentelemetry.context import Context  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

ROOT_ATTRIBUTES = {
    "discord.message.id": "1577427273148137475",
    "discord.channel.id": "1577427273148137476",
    "discord.author.name": "alice",
    "discord.shard.id": 0,
    "discord.guild.name": "chatops-sandbox",
}
FIELDS = {"discord.author.id": "1577427273148137477", "discord.guild.id": "1577427273148137478"}
URL = "http://127.0.0.1:8080/api/v10/channels/1577427273148137476/messages"


def message(tracer: Any) -> None:
    with tracer.start_as_current_span(
        "message", context=Context(), attributes=ROOT_ATTRIBUTES
    ) as r:
        r.set_attributes(FIELDS)
        r.update_name("command ping")
        r.set_attributes({"app.command": "ping", "app.command.args": ""})
        with tracer.start_as_current_span("discord.send", attributes=FIELDS) as send:
            send.set_attribute("app.response", "Pong! gateway 12 ms, REST 3 ms")
            http = tracer.start_span(
                "POST",
                kind=SpanKind.CLIENT,
                attributes={"http.method": "POST", "http.url": URL, **FIELDS},
            )
            http.set_attribute("http.status_code", 200)
            http.end()
        r.set_attributes({"app.response": "Pong! gateway 12 ms, REST 3 ms", "app.outcome": "ok"})


def sdk_provider(endpoint: str | None, store: Path | None) -> Any:
    """The first round's design: the SDK's provider, one batch processor per exporter."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from telemetry.spans import TraceFieldsProcessor
    from telemetry.store import SqliteSpanExporter

    provider = TracerProvider()
    provider.add_span_processor(TraceFieldsProcessor())
    if endpoint:
        exporter = OTLPSpanExporter(endpoint=endpoint + "/v1/traces")
        provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=64))
    if store:
        exporter = SqliteSpanExporter(store, max_age=_week(), max_bytes=1 << 30)
        provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=64))
    return provider


def lean_provider(endpoint: str | None, store: Path | None, one_in: int = 1) -> Any:
    from telemetry.setup import TelemetryConfig, build_provider
    from telemetry.span_pipeline import TailSampler

    config = TelemetryConfig(
        otlp_endpoint=endpoint, span_store=store, sampler=TailSampler(keep_ok_one_in=one_in)
    )
    return build_provider(config)


def _week() -> Any:
    from datetime import timedelta

    return timedelta(days=7)


def measure(make: Callable[[], Any], messages: int) -> float:
    provider = make()
    tracer = provider.get_tracer("bench")
    for _ in range(500):
        message(tracer)
    provider.force_flush()
    started = time.process_time()
    for n in range(messages):
        message(tracer)
        if n % 200 == 0:
            time.sleep(0.002)  # let the flush thread run, as the event loop's idle moments do
    provider.force_flush()
    spent = time.process_time() - started
    provider.shutdown()
    return spent / messages * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    receiver = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "bench" / "overhead_child.py"), "otlp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert receiver.stdout is not None and receiver.stdin is not None
    endpoint = f"http://127.0.0.1:{int(receiver.stdout.readline())}"
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "spans.db"
        rows: dict[str, Callable[[], Any]] = {
            "SDK, no exporter": lambda: sdk_provider(None, None),
            "SDK, OTLP (first round)": lambda: sdk_provider(endpoint, None),
            "SDK, store (first round)": lambda: sdk_provider(None, store),
            "lean, no exporter": lambda: lean_provider(None, None),
            "lean, OTLP": lambda: lean_provider(endpoint, None),
            "lean, OTLP, tail 1 in 10": lambda: lean_provider(endpoint, None, 10),
            "lean, store": lambda: lean_provider(None, store),
        }
        results: dict[str, list[float]] = {name: [] for name in rows}
        for _ in range(args.rounds):
            for name, make in rows.items():
                results[name].append(measure(make, args.messages))
    receiver.stdin.close()
    receiver.wait(60)
    print(f"{args.rounds} interleaved rounds of {args.messages} message traces (3 spans each)")
    print(f"{'pipeline':<28} {'µs/message':>10} {'min':>7} {'max':>7}")
    for name, values in results.items():
        print(
            f"{name:<28} {statistics.median(values):>10.1f} {min(values):>7.1f} {max(values):>7.1f}"
        )


if __name__ == "__main__":
    main()
