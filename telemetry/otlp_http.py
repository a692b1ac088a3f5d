"""OTLP/HTTP span exporters that send exactly the headers they are given.

The SDK's ``OTLPSpanExporter`` merges ``OTEL_EXPORTER_OTLP_HEADERS`` (and
``OTEL_EXPORTER_OTLP_TRACES_HEADERS``) from the process environment into every
exporter it builds, under whatever headers the caller passes. This process
builds exporters for more than one collector: its own, and CircleCI's
``CIRCLECI_OTLP_ENDPOINT`` with ``CIRCLECI_OTLP_*`` headers. Left alone, the
main collector's key would travel to the second one. ``Settings`` already reads
that variable for the main exporter, so nothing is lost by dropping what the
SDK took from the environment.

The SDK has no switch for this, so the exporter's headers are pinned after it
is built. That reaches into its client; if a later SDK keeps its headers
elsewhere, building an exporter fails loudly here rather than leaking a key
(and ``tests/integration/test_exporter_headers.py`` says so first).
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

# What the SDK itself sets on every request; everything else must be the caller's.
_SDK_HEADERS = frozenset({"content-type", "user-agent", "content-encoding"})


def span_exporter(url: str, headers: Mapping[str, str], timeout_s: float) -> OTLPSpanExporter:
    """OTLP/HTTP protobuf to ``url`` (the full ``/v1/traces`` URL) with only ``headers``."""
    exporter = OTLPSpanExporter(endpoint=url, headers=dict(headers), timeout=timeout_s)
    sent = getattr(getattr(exporter, "_client", None), "_headers", None)
    if not isinstance(sent, dict):
        raise RuntimeError(
            "this OTLP exporter keeps its headers where chatops cannot pin them; "
            "it would also send OTEL_EXPORTER_OTLP_HEADERS to every collector"
        )
    allowed = _SDK_HEADERS | {name.lower() for name in headers}
    for name in [name for name in sent if name.lower() not in allowed]:
        del sent[name]
    return exporter
