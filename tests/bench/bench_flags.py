"""Cost of one flag evaluation: provider alone, OpenFeature SDK, and with our span."""

from __future__ import annotations

import time
from pathlib import Path

from openfeature import api

from commands.toolkit.flag_checks import make_context
from commands.toolkit.flags import DOMAIN, FlagsConfig, evaluate, shutdown_flags, start_flags

REPO_FLAGS = Path(__file__).resolve().parents[2] / "flags.json"
N = 20_000


def per_call_us(fn: object, n: int = N) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()  # type: ignore[operator]
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from telemetry.setup import TelemetryConfig, build_provider, install

    processor = SimpleSpanProcessor(InMemorySpanExporter())
    install(build_provider(TelemetryConfig(span_store=None), exporters=[], processors=[processor]))
    start_flags(FlagsConfig(file=REPO_FLAGS))
    context = make_context("42", guild_id="5", channel_id="6", role_ids=["7", "8"])
    client = api.get_client(DOMAIN)
    provider = client.provider
    raw = per_call_us(lambda: provider.resolve_boolean_details("aci-reader", False, context))
    sdk = per_call_us(lambda: client.get_boolean_details("aci-reader", False, context))
    traced = per_call_us(lambda: evaluate("aci-reader", False, context), n=N // 4)
    shutdown_flags()
    print(f"provider alone:             {raw:6.1f} us")
    print(f"OpenFeature SDK + provider: {sdk:6.1f} us")
    print(f"evaluate() with its span:   {traced:6.1f} us (span export to memory included)")


if __name__ == "__main__":
    main()
