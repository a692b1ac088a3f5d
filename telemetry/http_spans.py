"""One CLIENT span per HTTP attempt, from an aiohttp client middleware on every session.

This replaces the contrib aiohttp client instrumentation, which cost ~0.33 ms per
message here (semantic-convention helpers, URL parsing, duration histograms and
header capture on every request) for a span with a handful of attributes. The
span follows the stable HTTP client semantic conventions: named after the method
(``HTTP`` for a method outside the standard ones), kind CLIENT,
``http.request.method``, ``url.full`` (interaction and webhook tokens and any
credentials removed), ``server.address``, ``server.port``,
``http.response.status_code``; a 4xx/5xx answer or an exception sets status ERROR
and ``error.type`` (the status code, or the exception's fully-qualified class name,
recorded as an event too). ``OTEL_SEMCONV_STABILITY_OPT_IN=http/dup`` (read by
``Settings``) adds the old names (``http.method``, ``http.url``,
``http.status_code``) for queries not yet moved. Each attempt is its own span
(discord.py's retry after a 429 is two), a child of whatever span is current when
the request starts, except a reply's: the first request under an open
``discord.send`` span is recorded on that span (one span per reply, not two), and
when it is retried each earlier attempt is moved to a child of its own
(``_on_send``).

Trace context is injected through the global propagator, which sends it only
where ``telemetry.propagation.propagate_trace`` allows (never to Discord).
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from typing import Any, Literal, cast

import aiohttp
from aiohttp import ClientRequest, ClientResponse
from aiohttp.client_middlewares import ClientHandlerType, ClientMiddlewareType
from opentelemetry import propagate
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

# The old names: the conventions' package keeps them (deprecated) where contrib reads them.
from opentelemetry.semconv._incubating.attributes.http_attributes import (
    HTTP_METHOD,
    HTTP_STATUS_CODE,
    HTTP_TARGET,
    HTTP_URL,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_REQUEST_METHOD_ORIGINAL,
    HTTP_RESPONSE_STATUS_CODE,
    HttpRequestMethodValues,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_FULL
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.http import redact_url as redact_credentials

from telemetry import schema
from telemetry.ratelimit_headers import record_bucket
from telemetry.spans import Attempt, Sending, error_type, sending
from telemetry.tracer import (
    UNSET_STATUS,
    LeanSpan,
    attach_span,
    current_span,
    detach,
    module_tracer,
)

# ``OTEL_SEMCONV_STABILITY_OPT_IN``: ``http`` (stable names only; the default here) or
# ``http/dup`` (stable and old names on every span).
HttpSemconv = Literal["stable", "dup"]

# Where any instrumentation records a request's URL (old and stable conventions).
URL_KEYS = (HTTP_URL, URL_FULL, HTTP_TARGET)
# The methods the conventions name; any other is recorded as ``_OTHER`` and spans "HTTP".
_KNOWN_METHODS = frozenset(
    value.value for value in HttpRequestMethodValues if value is not HttpRequestMethodValues.OTHER
)
_OTHER_METHOD = HttpRequestMethodValues.OTHER.value

log = logging.getLogger(__name__)
tracer = module_tracer(__name__)

# An interaction's token is in the path of its callback and webhook URLs, and lets
# whoever holds it answer as the bot for 15 minutes: never record it on a span.
_TOKEN_IN_PATH = re.compile(r"(/(?:interactions|webhooks)/\d+/)[^/?#]+")


def redact_url(url: object) -> str:
    """The URL as recorded on HTTP spans: interaction/webhook tokens and credentials removed.

    Credentials and signed query parameters (``sig``, ``Signature``, …) go the
    way the contrib instrumentation removes them (``opentelemetry.util.http``).
    """
    text = str(url)
    # A regular expression substitution costs microseconds even when nothing matches, and
    # this runs for every request: look for the path segments that can hold a token first.
    if "/interactions/" in text or "/webhooks/" in text:
        text = _TOKEN_IN_PATH.sub(r"\1{token}", text)
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


def _request_attributes(method: str, url: Any, mode: HttpSemconv) -> tuple[str, dict[str, Any]]:
    """The span name and start attributes of a request (``url`` is aiohttp's ``yarl.URL``)."""
    full = redact_url(url)
    if method in _KNOWN_METHODS:
        name = method
        attributes: dict[str, Any] = {HTTP_REQUEST_METHOD: method}
    else:
        name = "HTTP"
        attributes = {HTTP_REQUEST_METHOD: _OTHER_METHOD, HTTP_REQUEST_METHOD_ORIGINAL: method}
    attributes[URL_FULL] = full
    # yarl parsed the URL already; host and port (the scheme's default if none) are cached.
    host = url.host
    if host:
        attributes[SERVER_ADDRESS] = host
    port = url.port
    if port:
        attributes[SERVER_PORT] = port
    if mode == "dup":
        attributes[HTTP_METHOD] = method
        attributes[HTTP_URL] = full
    return name, attributes


def _as_the_caller_sees_it(request: ClientRequest, exception: BaseException) -> BaseException:
    """The session's total timeout cancels the request inside the middleware; aiohttp
    turns that ``CancelledError`` into the ``TimeoutError`` its caller gets only after
    the middleware has returned. Record the timeout, not a cancellation (a task
    cancelled from outside stays ``CancelledError``)."""
    timer = getattr(request, "_timer", None)  # aiohttp's TimerContext; absent: as raised
    if isinstance(exception, asyncio.CancelledError) and getattr(timer, "_cancelled", False):
        timeout = TimeoutError()
        timeout.__cause__ = exception
        return timeout
    return exception


def middleware(mode: HttpSemconv = "stable") -> ClientMiddlewareType:
    """An aiohttp client middleware making one span per attempt, with the names ``mode``
    asks for (chosen once: per request, nothing but the attributes themselves).

    A middleware is one coroutine around each attempt (each redirect hop and each
    retry discord.py makes is its own); a ``TraceConfig`` cost several per request
    (a signal per phase, each with its own parameters object and copy of the URL).
    Under an open ``discord.send`` span the attempt is recorded on that span
    (``_on_send``) instead of a span of its own.
    """
    dup = mode == "dup"
    start_span = tracer.start_span
    inject = propagate.inject

    async def http_span(request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        name, attributes = _request_attributes(request.method, request.url, mode)
        send = sending()
        if send is not None and _takes(send, attributes):
            return await _on_send(send, name, attributes, request, handler, dup)
        span = start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        token = attach_span(span)
        try:
            inject(request.headers)
            response = await handler(request)
        except BaseException as exception:
            _failed(span, request, exception)
            raise
        else:
            _answered(span, response, dup)
            return response
        finally:
            detach(token)
            span.end()

    return http_span


def _answered(span: Any, response: ClientResponse, dup: bool) -> bool:
    """Record the answer on ``span``; True if it is a failure (a 4xx/5xx)."""
    status = response.status
    span.set_attribute(HTTP_RESPONSE_STATUS_CODE, status)
    if dup:
        span.set_attribute(HTTP_STATUS_CODE, status)
    record_bucket(span, response.headers, status)
    if status >= 400 or status < 100:
        span.set_attribute(ERROR_TYPE, str(status))
        span.set_status(Status(StatusCode.ERROR))
        return True
    return False


def _failed(span: Any, request: ClientRequest, exception: BaseException) -> None:
    failure = _as_the_caller_sees_it(request, exception)
    span.set_attribute(ERROR_TYPE, error_type(failure))
    span.set_status(Status(StatusCode.ERROR, type(failure).__qualname__))
    span.record_exception(failure)


def _takes(send: Sending, attributes: dict[str, Any]) -> bool:
    """Whether this attempt is recorded on the open ``discord.send`` span itself: the
    send's first request, or a retry of it (the same method and URL after an attempt
    that failed and ended), made while the send span is current."""
    span = send.span
    # Ended: a task started inside the send (and so still seeing it current) asks later.
    if type(span) is not LeanSpan or current_span() is not span or span._end_time is not None:
        return False
    attempt = send.attempt
    return attempt is None or (
        attempt.failed
        and attempt.end_ns != 0
        and attempt.method == attributes[HTTP_REQUEST_METHOD]
        and attempt.url == attributes[URL_FULL]
    )


async def _on_send(
    send: Sending,
    name: str,
    attributes: dict[str, Any],
    request: ClientRequest,
    handler: ClientHandlerType,
    dup: bool,
) -> ClientResponse:
    """The attempt as the send span: kind CLIENT, its HTTP attributes, status and events,
    and its own duration (``app.http.attempt_ms``: the send's spans its waits too).

    A retry moves the attempt before it to a child span first (``_set_apart``), so
    the send span ends up as the request's last attempt and every attempt is seen.
    """
    span = cast(LeanSpan, send.span)
    held = cast(dict[str, Any], span._attributes)  # a lean span's own dict
    if send.attempt is not None:
        _set_apart(span, held, send.attempt)
    attempt = send.attempt = Attempt(
        name,
        attributes[HTTP_REQUEST_METHOD],
        attributes[URL_FULL],
        time.time_ns(),
        held.copy(),
        len(span._events),
    )
    span._kind = SpanKind.CLIENT
    span.set_attributes(attributes)
    try:
        propagate.inject(request.headers)
        response = await handler(request)
    except BaseException as exception:
        attempt.raised = exception
        attempt.failed = True
        _failed(span, request, exception)
        raise
    else:
        attempt.failed = _answered(span, response, dup)
        return response
    finally:
        attempt.end_ns = end = time.time_ns()
        span.set_attribute(schema.HTTP_ATTEMPT_MS, round((end - attempt.start_ns) / 1e6, 3))


def _set_apart(span: LeanSpan, held: dict[str, Any], attempt: Attempt) -> None:
    """Move ``attempt`` off the send span into a CLIENT child span of its own, as it was:
    what it recorded (attributes it set or changed, events, status), at its own times."""
    before = attempt.before
    recorded = {key: value for key, value in held.items() if before.get(key, _NONE) is not value}
    recorded.pop(schema.HTTP_ATTEMPT_MS, None)  # a span of its own has its own duration
    child = tracer.start_span(
        attempt.name, kind=SpanKind.CLIENT, attributes=recorded, start_time=attempt.start_ns
    )
    held.clear()
    held.update(before)
    events = span._events
    if isinstance(child, LeanSpan):
        child._events.extend(events[attempt.first_event :])
        child._status = span._status
    del events[attempt.first_event :]
    span._status = UNSET_STATUS
    child.end(attempt.end_ns)


_NONE = object()


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


def contrib_http_semconv() -> str | None:
    """Which HTTP names the contrib instrumentation records: ``default`` (the old ones),
    ``http`` or ``http/dup``, as it read ``OTEL_SEMCONV_STABILITY_OPT_IN`` itself;
    None when it is not loaded (or no longer says)."""
    module = sys.modules.get("opentelemetry.instrumentation._semconv")
    stability = getattr(module, "_OpenTelemetrySemanticConventionStability", None)
    signal = getattr(module, "_OpenTelemetryStabilitySignalType", None)
    try:
        mode = stability._get_opentelemetry_stability_opt_in_mode(signal.HTTP)  # type: ignore[union-attr]
    except (AttributeError, TypeError):
        return None
    return str(getattr(mode, "value", mode))


def install(mode: HttpSemconv = "stable") -> None:
    """Give every ``aiohttp.ClientSession`` created from now on our middleware (once).

    Sessions are created by discord.py, by the bot (external APIs) and by the
    Azure SDK's transport; patching the constructor reaches all three, as the
    contrib instrumentation does. If that instrumentation is already active,
    it makes the spans and this does nothing (two spans per request otherwise).
    """
    global _installed
    if _installed:
        return
    if contrib_instrumented():
        if contrib_http_semconv() == "default":
            log.warning(
                "HTTP spans come from opentelemetry-instrument's aiohttp instrumentation, which "
                "records the old HTTP attribute names: set OTEL_SEMCONV_STABILITY_OPT_IN=http "
                "for the stable names the console, stats and the Honeycomb queries read"
            )
        return
    http_span = middleware(mode)
    original = aiohttp.ClientSession.__init__

    def __init__(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
        # First, so the span also covers what the session's own middlewares do.
        kwargs["middlewares"] = (http_span, *(kwargs.get("middlewares") or ()))
        original(self, *args, **kwargs)

    aiohttp.ClientSession.__init__ = __init__  # type: ignore[method-assign]
    _installed = True
