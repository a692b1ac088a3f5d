"""One CLIENT span per HTTP attempt, from an ``aiohttp.TraceConfig`` on every client session.

This replaces the contrib aiohttp client instrumentation, which cost ~0.33 ms per
message here (semantic-convention helpers, URL parsing, duration histograms and
header capture on every request) for a span with four attributes. The span is
the same: named after the method, kind CLIENT, ``http.method``, ``http.url``
(interaction and webhook tokens and any credentials removed), ``http.status_code``,
status ERROR for a 4xx/5xx answer or an exception (recorded as an event). Each
attempt is its own span (discord.py's retry after a 429 is two), a child of
whatever span is current when the request starts.

Trace context is injected through the global propagator, which sends it only
where ``telemetry.propagation.propagate_trace`` allows (never to Discord).
"""

from __future__ import annotations

import re
import sys
from types import SimpleNamespace
from typing import Any

import aiohttp
from opentelemetry import context as context_api
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.util.http import redact_url as redact_credentials

from telemetry.ratelimit_headers import record_bucket

HTTP_METHOD = "http.method"
HTTP_URL = "http.url"
HTTP_STATUS_CODE = "http.status_code"
URL_FULL = "url.full"
# Where any instrumentation records a request's URL (old and stable conventions).
URL_KEYS = (HTTP_URL, URL_FULL, "http.target")

tracer = trace.get_tracer(__name__)

# An interaction's token is in the path of its callback and webhook URLs, and lets
# whoever holds it answer as the bot for 15 minutes: never record it on a span.
_TOKEN_IN_PATH = re.compile(r"(/(?:interactions|webhooks)/\d+/)[^/?#]+")


def redact_url(url: object) -> str:
    """The URL as recorded on HTTP spans: interaction/webhook tokens and credentials removed.

    Credentials and signed query parameters (``sig``, ``Signature``, …) go the
    way the contrib instrumentation removes them (``opentelemetry.util.http``).
    """
    text = _TOKEN_IN_PATH.sub(r"\1{token}", str(url))
    # Credentials sit before an "@", signed parameters after a "?": parse only then.
    return redact_credentials(text) if "@" in text or "?" in text else text


class UrlRedactor(SpanProcessor):
    """Tokens and credentials out of every span's URL attributes, whoever made the span.

    Our spans are made redacted; this catches the rest: the contrib aiohttp
    instrumentation (``opentelemetry-instrument`` installs it, and then ours stands
    down) records the interaction token in ``http.url`` / ``url.full``. It runs
    before the trace pipeline and any other processor, so nothing downstream (the
    exporters, the span store, the console) sees the token. Per span it costs a
    dictionary lookup per key; a URL is rewritten only when it needs it.
    """

    def on_end(self, span: ReadableSpan) -> None:
        attributes = span.attributes
        if not attributes:
            return
        for key in URL_KEYS:
            value = attributes.get(key)
            if not isinstance(value, str):
                continue
            redacted = redact_url(value)
            if redacted != value:
                _replace(span, key, redacted)


def _replace(span: ReadableSpan, key: str, value: str) -> None:
    """Set one attribute of a finished span (lean spans hold a plain dict; an SDK span's
    is frozen once it ends, so it is replaced by a copy)."""
    held = getattr(span, "_attributes", None)
    if isinstance(held, dict):
        held[key] = value
    elif held is not None:
        span._attributes = {**held, key: value}  # type: ignore[assignment]


async def _on_request_start(
    session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestStartParams
) -> None:
    method = params.method
    span = tracer.start_span(
        method,
        kind=SpanKind.CLIENT,
        attributes={HTTP_METHOD: method, HTTP_URL: redact_url(params.url)},
    )
    ctx.span = span
    ctx.token = context_api.attach(context_api.set_value(_SPAN_KEY, span))
    propagate.inject(params.headers)


async def _on_request_end(
    session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
) -> None:
    span = getattr(ctx, "span", None)
    if span is None:
        return
    status = params.response.status
    span.set_attribute(HTTP_STATUS_CODE, status)
    if status >= 400 or status < 100:
        span.set_status(Status(StatusCode.ERROR))
    record_bucket(span, params.response.headers, status)
    _finish(ctx)


async def _on_request_exception(
    session: aiohttp.ClientSession,
    ctx: SimpleNamespace,
    params: aiohttp.TraceRequestExceptionParams,
) -> None:
    span = getattr(ctx, "span", None)
    if span is None:
        return
    exception = params.exception
    span.set_status(Status(StatusCode.ERROR, type(exception).__qualname__))
    span.record_exception(exception)
    _finish(ctx)


def _finish(ctx: SimpleNamespace) -> None:
    context_api.detach(ctx.token)
    ctx.span.end()
    ctx.span = None


def trace_config() -> aiohttp.TraceConfig:
    """A ``TraceConfig`` making one span per request of the session it is given to."""
    config = aiohttp.TraceConfig()
    config.on_request_start.append(_on_request_start)
    config.on_request_end.append(_on_request_end)
    config.on_request_exception.append(_on_request_exception)
    config.freeze()
    return config


_installed = False


def contrib_instrumented() -> bool:
    """Whether the contrib aiohttp instrumentation is active (``opentelemetry-instrument``).

    Only looked up if already imported: importing it to ask would cost memory.
    """
    module = sys.modules.get("opentelemetry.instrumentation.aiohttp_client")
    instrumentor = getattr(module, "AioHttpClientInstrumentor", None)
    return bool(
        instrumentor and getattr(instrumentor(), "_is_instrumented_by_opentelemetry", False)
    )


def install() -> None:
    """Give every ``aiohttp.ClientSession`` created from now on our trace config (once).

    Sessions are created by discord.py, by the bot (external APIs) and by the
    Azure SDK's transport; patching the constructor reaches all three, as the
    contrib instrumentation does. If that instrumentation is already active,
    it makes the spans and this does nothing (two spans per request otherwise).
    """
    global _installed
    if _installed or contrib_instrumented():
        return
    config = trace_config()
    original = aiohttp.ClientSession.__init__

    def __init__(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
        kwargs["trace_configs"] = [*(kwargs.get("trace_configs") or ()), config]
        original(self, *args, **kwargs)

    aiohttp.ClientSession.__init__ = __init__  # type: ignore[method-assign]
    _installed = True
