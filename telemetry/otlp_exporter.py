"""The bot's OTLP/HTTP span exporter: the SDK's HTTP client, our wire encoder.

``OTLPSpanExporter`` is three parts: the protobuf encoding, an HTTP client with
the retry, backoff, compression and timeout rules of the OTLP specification
(``_OTLPHTTPClient``), and a transport under it. Measured here, the first cost
64-80 µs a span and its module 3.2 MB of memory (the generated protobuf
classes); the default transport (requests) held the GIL 1.5-2.2 ms per POST.
This exporter keeps the SDK's client as it is and replaces the other two: the
wire encoder (``telemetry/otlp_wire.py``, proven equal by decoding) and the
SDK's own urllib3 transport (0.7-1.2 ms per POST).

It sends exactly the headers it is given plus the SDK's own (content type, user
agent, content encoding): the SDK's exporter would merge
``OTEL_EXPORTER_OTLP_HEADERS`` into every exporter, and this process may build
one for another collector. Compression follows ``OTEL_EXPORTER_OTLP_*COMPRESSION``
as the SDK resolves it. Failures are logged under the SDK exporter's logger, so
``telemetry/drops.py`` summarises them.

The SDK parts it uses are private (``_OTLPHTTPClient``, the transports, the
header and compression helpers); ``tests/unit/test_tracer.py`` sends through
them against a local collector, so a change of shape fails the suite first.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from telemetry.drops import EXPORTER_LOGGER
from telemetry.otlp_wire import RequestBuilder

COMPRESSION_ENV = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"


def urllib3_transport(
    certificate: Path | None = None,
    client_certificate: Path | None = None,
    client_key: Path | None = None,
) -> Any:
    """The SDK's urllib3 transport, trusting ``certificate`` (a CA bundle) when given."""
    from opentelemetry.exporter.http.transport._urllib3 import Urllib3HTTPTransport

    cert: str | tuple[str, str] | None = None
    if client_certificate is not None:
        cert = (str(client_certificate), str(client_key)) if client_key else str(client_certificate)
    return Urllib3HTTPTransport(verify=str(certificate) if certificate else True, cert=cert)


def requests_transport() -> Any:
    """The SDK's default transport (requests): it honours ``HTTPS_PROXY`` and friends."""
    from opentelemetry.exporter.http.transport._requests import RequestsHTTPTransport

    return RequestsHTTPTransport()


class WireSpanExporter(SpanExporter):
    """OTLP/HTTP protobuf to ``url`` (the full ``/v1/traces`` URL) with only ``headers``."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        timeout_s: float,
        transport: Any = None,
    ) -> None:
        from opentelemetry.exporter.otlp.common.http import _OTLPHTTPClient
        from opentelemetry.exporter.otlp.proto.http import _OTLP_HTTP_HEADERS
        from opentelemetry.exporter.otlp.proto.http._common import _resolve_compression

        sent = {key.lower(): value for key, value in _OTLP_HTTP_HEADERS.items()}
        sent.update({key.lower(): value for key, value in headers.items()})
        self.url = url
        self._transport = transport if transport is not None else urllib3_transport()
        self._client = _OTLPHTTPClient(
            transport=self._transport,
            endpoint=url,
            kind="spans",
            timeout=timeout_s,
            compression=_resolve_compression(COMPRESSION_ENV),
            headers=sent,
            logger=logging.getLogger(EXPORTER_LOGGER),
        )
        self._shutdown = False

    @property
    def headers(self) -> dict[str, str]:
        """What every request carries (for tests: nothing from another collector)."""
        return dict(self._client._headers)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Encode span by span: one that cannot be encoded is left out, not its batch."""
        builder = RequestBuilder()
        for span in spans:
            try:
                builder.add(span)
            except Exception as exc:
                self._client._logger.warning(
                    "span %r left out: it cannot be encoded (%s)", span.name, exc
                )
        if not len(builder):
            return SpanExportResult.FAILURE
        return self.export_encoded(builder.build())

    def export_encoded(self, request: bytes) -> SpanExportResult:
        """Send one serialized ``ExportTraceServiceRequest`` (retries as the SDK does)."""
        if self._shutdown:
            return SpanExportResult.FAILURE
        result = self._client.export(request)
        return SpanExportResult.SUCCESS if result.success else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        if not self._shutdown:
            self._shutdown = True
            self._client.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
