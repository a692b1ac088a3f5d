"""A lean tracer behind the OpenTelemetry API: the SDK's spans were the floor of our cost.

Measured on this bot (docs/telemetry.md, "What tracing costs"), the SDK spent
~60 µs creating and ending each span: a lock and bounded containers per span,
a sampler call per child, a copy of every span into a new ``ReadableSpan`` when
it ends, and a chain of processors. A message makes three to five spans, so the
SDK alone cost about a quarter of what the plain bot spends per message.

``LeanTracerProvider`` keeps the interfaces and drops the per-span machinery:
- code everywhere uses ``opentelemetry.trace`` (``get_tracer``,
  ``start_as_current_span``, ``Span``), unchanged;
- a span is a plain object that is its own ``ReadableSpan`` once ended, so the
  SDK's span processors and exporters (``SimpleSpanProcessor``,
  ``InMemorySpanExporter``, ``OTLPSpanExporter``, the SQLite store) take it as is;
- the SDK's ``Resource``, samplers (``OTEL_TRACES_SAMPLER``) and
  ``OTEL_SDK_DISABLED`` keep their meaning. Children follow their parent's
  sampling decision (the SDK's default ``parentbased_*`` behaviour), so only
  root spans ask the sampler.
"""

from __future__ import annotations

import os
import random
import time
import traceback
from collections.abc import Mapping, Sequence
from contextvars import ContextVar, Token
from operator import attrgetter
from types import TracebackType
from typing import Any, cast

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.attributes import _clean_attribute_value
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    _get_from_env_or_default,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    INVALID_SPAN_ID,
    INVALID_TRACE_ID,
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.util import types

from telemetry import _span_codec

MAX_ATTRIBUTES = 128  # the SDK's default span limits
MAX_EVENTS = 128
MAX_LINKS = 128
_SIMPLE_TYPES = (str, bool, int, float)
_SIMPLE_TYPE_SET = frozenset(_SIMPLE_TYPES)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
EMPTY_TRACE_STATE = TraceState()
UNSET_STATUS = Status(StatusCode.UNSET)
_new_tuple = tuple.__new__


def _runtime_context_var() -> ContextVar[Context] | None:
    """The context variable behind the OpenTelemetry context API, when it is the default
    ``contextvars`` runtime; None for any other (then the API's functions are used)."""
    var = getattr(context_api._RUNTIME_CONTEXT, "_current_context", None)
    return var if isinstance(var, ContextVar) else None


_CONTEXT_VAR = _runtime_context_var()


def current_context() -> Context:
    """``context.get_current()`` without the API's two calls per lookup."""
    return _CONTEXT_VAR.get() if _CONTEXT_VAR is not None else context_api.get_current()


def current_span() -> object:
    """The current span (None when there is none), as ``trace.get_current_span`` finds it."""
    return current_context().get(_SPAN_KEY)


def attach_span(span: trace_api.Span) -> Token[Context]:
    """Make ``span`` current, as ``context.attach(trace.set_span_in_context(span))``."""
    if _CONTEXT_VAR is None:
        return context_api.attach(context_api.set_value(_SPAN_KEY, span))
    return _CONTEXT_VAR.set(Context({**_CONTEXT_VAR.get(), _SPAN_KEY: span}))


def detach(token: Token[Context]) -> None:
    """``context.detach``: a token from another context is logged by the API, not raised."""
    if _CONTEXT_VAR is None:
        context_api.detach(token)
        return
    try:
        _CONTEXT_VAR.reset(token)
    except Exception:  # another context's token (ValueError), a used one (RuntimeError)
        context_api.detach(token)  # fails again and logs "Failed to detach context", as the API


class _Ids:
    """Trace and span ids from a private generator seeded by the OS.

    Not the global ``random`` module: anything that seeds it (a game command, a
    test framework) would make later messages repeat trace ids. Not
    ``secrets`` per id either: a system call per id costs more than the span.
    Reseeded in a forked child so two processes never share a sequence.
    """

    def __init__(self) -> None:
        self._random = random.Random(os.urandom(32))
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self._random.seed(os.urandom(32))

    def span_id(self) -> int:
        value = self._random.getrandbits(64)
        while value == INVALID_SPAN_ID:
            value = self._random.getrandbits(64)
        return value

    def trace_id(self) -> int:
        value = self._random.getrandbits(128)
        while value == INVALID_TRACE_ID:
            value = self._random.getrandbits(128)
        return value


def _clean(key: str, value: Any) -> Any:
    """The value as the SDK stores it (sequences as tuples; None as None, as the SDK keeps it)."""
    if type(value) in _SIMPLE_TYPES:
        return value
    return _clean_attribute_value(value, None)


class LeanSpan(trace_api.Span, ReadableSpan):
    """A recording span; once ended, the ``ReadableSpan`` processors and exporters read.

    ``ReadableSpan.__init__`` is deliberately not called: it would copy every
    field into bounded containers; the fields it reads are set here directly.
    Its properties are read per span by every processor and exporter, so they are
    C attribute getters here, and ``attributes``, ``events`` and ``links`` hand out
    the span's own containers (it is finished, nothing changes them any more)
    instead of a fresh read-only copy each time.
    """

    # Slots: fixed offsets the compiled codec (telemetry/_span_codec.c) reads directly,
    # and quicker attribute access for everything else.
    __slots__ = (
        "_attributes",
        "_context",
        "_end_time",
        "_events",
        "_instrumentation_info",
        "_instrumentation_scope",
        "_kind",
        "_links",
        "_name",
        "_parent",
        "_processors",
        "_record_exception",
        "_resource",
        "_set_status_on_exception",
        "_start_time",
        "_status",
    )

    name = property(attrgetter("_name"))  # type: ignore[assignment]
    context = property(attrgetter("_context"))  # type: ignore[assignment]
    kind = property(attrgetter("_kind"))  # type: ignore[assignment]
    parent = property(attrgetter("_parent"))  # type: ignore[assignment]
    start_time = property(attrgetter("_start_time"))  # type: ignore[assignment]
    end_time = property(attrgetter("_end_time"))  # type: ignore[assignment]
    status = property(attrgetter("_status"))  # type: ignore[assignment]
    attributes = property(attrgetter("_attributes"))  # type: ignore[assignment]
    events = property(attrgetter("_events"))  # type: ignore[assignment]
    links = property(attrgetter("_links"))  # type: ignore[assignment]
    resource = property(attrgetter("_resource"))  # type: ignore[assignment]
    instrumentation_scope = property(attrgetter("_instrumentation_scope"))  # type: ignore[assignment]
    # Nothing is counted as dropped: past the limits, attributes, events and links are
    # refused as the SDK's default limits would, but not counted (the SDK's own
    # ``ReadableSpan`` reports 0 too when its containers are not bounded).
    dropped_attributes = 0  # type: ignore[assignment]
    dropped_events = 0  # type: ignore[assignment]
    dropped_links = 0  # type: ignore[assignment]

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        links: list[Link],
        start_time: int,
        resource: Resource,
        scope: InstrumentationScope,
        processors: Sequence[SpanProcessor],
        *,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> None:
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._attributes = attributes
        self._events: list[Event] = []
        self._links = links
        self._start_time = start_time
        self._end_time: int | None = None
        self._status = UNSET_STATUS
        self._resource = resource
        self._instrumentation_scope = scope
        self._instrumentation_info = None
        self._processors = processors
        self._record_exception = record_exception
        self._set_status_on_exception = set_status_on_exception

    # -- opentelemetry.trace.Span -----------------------------------------------

    def get_span_context(self) -> SpanContext:
        return self._context  # type: ignore[return-value]

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        if self._end_time is not None:
            return
        cleaned = value if type(value) in _SIMPLE_TYPES else _clean(key, value)
        attributes: dict[str, Any] = self._attributes  # type: ignore[assignment]
        if key in attributes or len(attributes) < MAX_ATTRIBUTES:
            attributes[key] = cleaned

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        # One dict update when every value is a plain str/bool/int/float and the limit
        # leaves room: the trace fields are copied onto every span this way.
        held: dict[str, Any] = self._attributes  # type: ignore[assignment]
        if (
            self._end_time is None
            and type(attributes) is dict
            and len(held) + len(attributes) <= MAX_ATTRIBUTES
            and _SIMPLE_TYPE_SET.issuperset(map(type, attributes.values()))
        ):
            held.update(attributes)
            return
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        if self._end_time is not None or len(self._events) >= MAX_EVENTS:
            return
        self._events.append(
            Event(name, attributes, timestamp if timestamp is not None else time.time_ns())
        )

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self._end_time is not None or not context.is_valid or len(self._links) >= MAX_LINKS:
            return
        cast(list[Link], self._links).append(Link(context, attributes))

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # As the SDK: OK is final, UNSET is ignored.
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            if status.status_code is not StatusCode.UNSET:
                self._status = status
        elif status is not StatusCode.UNSET:
            self._status = Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """As the SDK records it: an ``exception`` event with type, message and stack."""
        module = type(exception).__module__
        qualname = type(exception).__qualname__
        event: dict[str, Any] = {
            "exception.type": f"{module}.{qualname}"
            if module and module != "builtins"
            else qualname,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            event.update(attributes)
        self.add_event("exception", event, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            return
        self._end_time = end_time if end_time is not None else time.time_ns()
        for processor in self._processors:
            processor.on_end(self)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        if exc_val is not None and self._end_time is None:
            if self._record_exception:
                self.record_exception(exc_val, escaped=True)
            if self._set_status_on_exception:
                self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        self.end()

    def __repr__(self) -> str:
        return f'LeanSpan(name="{self._name}", context={self._context})'


# The compiled codec (OTLP bytes, store rows) reads a lean span's slots at their offsets and
# compares kinds, status codes and the empty trace state by identity.
_span_codec.configure(
    LeanSpan,
    tuple(sorted(SpanKind, key=lambda kind: kind.value)),
    tuple(sorted(StatusCode, key=lambda code: code.value)),
    EMPTY_TRACE_STATE,
)


class _CurrentSpan:
    """``start_as_current_span`` as a class: the API's generator-based one costs more."""

    __slots__ = ("_end_on_exit", "_record", "_set_status", "_span", "_token")

    def __init__(
        self, span: trace_api.Span, end_on_exit: bool, record: bool, set_status: bool
    ) -> None:
        self._span = span
        self._end_on_exit = end_on_exit
        self._record = record
        self._set_status = set_status

    def __enter__(self) -> trace_api.Span:
        self._token = attach_span(self._span)
        return self._span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        detach(self._token)
        span = self._span
        if isinstance(exc_val, Exception) and span.is_recording():
            if self._record:
                span.record_exception(exc_val)
            if self._set_status:
                span.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        if self._end_on_exit:
            span.end()


class LeanTracer(trace_api.Tracer):
    """Starts ``LeanSpan``s for one instrumentation scope."""

    def __init__(self, provider: LeanTracerProvider, scope: InstrumentationScope) -> None:
        self._provider = provider
        self._scope = scope

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        provider = self._provider
        current = (context if context is not None else current_context()).get(_SPAN_KEY)
        parent: SpanContext
        if type(current) is LeanSpan:
            parent = current._context  # type: ignore[assignment]
        elif isinstance(current, trace_api.Span):
            parent = current.get_span_context() or INVALID_SPAN_CONTEXT
        else:
            parent = INVALID_SPAN_CONTEXT
        ids = provider.ids
        cleaned: dict[str, Any]
        if not attributes:
            cleaned = {}
        elif (
            type(attributes) is dict
            and len(attributes) <= MAX_ATTRIBUTES
            and _SIMPLE_TYPE_SET.issuperset(map(type, attributes.values()))
        ):
            cleaned = attributes.copy()  # plain values: nothing to clean, one C-level copy
        else:
            cleaned = {}
            for key, value in attributes.items():
                value = value if type(value) in _SIMPLE_TYPES else _clean(key, value)
                if len(cleaned) < MAX_ATTRIBUTES:
                    cleaned[key] = value
        # SpanContext is a tuple: (trace_id, span_id, is_remote, flags, state, is_valid);
        # its properties are Python calls, its items are not.
        remote: bool
        if parent[5]:
            trace_id, _, remote, flags, state, _ = parent  # type: ignore[misc]
            parent_context: SpanContext | None = parent
            sampled = flags & TraceFlags.SAMPLED != 0
        else:
            trace_id, parent_context, remote = ids.trace_id(), None, False
            flags, state, sampled = _SAMPLED, EMPTY_TRACE_STATE, True
        if provider.sampler is not None and (parent_context is None or remote):
            result = provider.sampler.should_sample(
                context, trace_id, name, kind, cleaned, list(links or ())
            )
            sampled = result.decision is Decision.RECORD_AND_SAMPLE
            flags = _SAMPLED if sampled else _NOT_SAMPLED
            state = result.trace_state or state
            if sampled and result.attributes:
                cleaned.update(result.attributes)
        # Both ids are valid by construction: skip SpanContext's range checks.
        span_context = _new_tuple(SpanContext, (trace_id, ids.span_id(), False, flags, state, True))
        if not sampled:
            return NonRecordingSpan(span_context)
        span = LeanSpan(
            name,
            span_context,
            parent_context,
            kind,
            cleaned,
            [link for link in links if link.context.is_valid] if links else [],
            start_time if start_time is not None else time.time_ns(),
            provider.resource,
            self._scope,
            provider.end_processors,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        )
        for processor in provider.start_processors:
            processor.on_start(span, context)  # type: ignore[arg-type]
        return span

    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> _CurrentSpan:
        span = self.start_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )
        return _CurrentSpan(span, end_on_exit, record_exception, set_status_on_exception)


class LeanTracerProvider(trace_api.TracerProvider):
    """The process's tracer provider: lean spans, the SDK's processors, resource and sampler."""

    def __init__(self, resource: Resource, sampler: Sampler | None = None) -> None:
        self.resource = resource
        self.ids = _Ids()
        configured = sampler if sampler is not None else _get_from_env_or_default()
        # The SDK's default (parent-based, always on) needs no call per root span.
        default = isinstance(configured, ParentBased) and configured._root is ALWAYS_ON
        self.sampler: Sampler | None = None if default or configured is ALWAYS_ON else configured
        self.processors: tuple[SpanProcessor, ...] = ()
        self.start_processors: tuple[SpanProcessor, ...] = ()
        self.end_processors: tuple[SpanProcessor, ...] = ()
        self.disabled = os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
        self._tracers: dict[tuple[str, str | None, str | None], trace_api.Tracer] = {}

    def add_span_processor(self, processor: SpanProcessor) -> None:
        """Processors see spans start and end, each only if it overrides that method."""
        self.processors = (*self.processors, processor)
        if type(processor).on_start is not SpanProcessor.on_start:
            self.start_processors = (*self.start_processors, processor)
        if type(processor).on_end is not SpanProcessor.on_end:
            self.end_processors = (*self.end_processors, processor)

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: types.Attributes | None = None,
    ) -> trace_api.Tracer:
        if self.disabled:
            return trace_api.NoOpTracer()
        key = (instrumenting_module_name, instrumenting_library_version, schema_url)
        tracer = self._tracers.get(key)
        if tracer is None:
            scope = InstrumentationScope(
                instrumenting_module_name, instrumenting_library_version, schema_url, attributes
            )
            tracer = self._tracers[key] = LeanTracer(self, scope)
        return tracer

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000
        flushed = True
        for processor in self.processors:
            left = max(int((deadline - time.monotonic()) * 1000), 0)
            flushed = processor.force_flush(left) and flushed
        return flushed

    def shutdown(self) -> None:
        for processor in self.processors:
            processor.shutdown()


class ModuleTracer(trace_api.Tracer):
    """A module's tracer, made at import time, before ``chatops run`` sets the provider.

    ``trace.get_tracer`` at import returns the API's ``ProxyTracer``, which looks up
    the real tracer and wraps ``start_as_current_span`` in a generator-based context
    manager on every span: four more Python calls per span. This one binds the real
    tracer's methods onto itself the first time a span starts after a provider is
    set, so every later span goes straight to the tracer.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def _real(self) -> trace_api.Tracer | None:
        provider = trace_api.get_tracer_provider()
        if isinstance(provider, trace_api.ProxyTracerProvider):
            return None  # no provider yet: spans are no-ops, as the API's proxy makes them
        real = provider.get_tracer(self._name)
        self.start_span = real.start_span  # type: ignore[method-assign]
        self.start_as_current_span = real.start_as_current_span  # type: ignore[method-assign]
        return real

    def start_span(self, *args: Any, **kwargs: Any) -> trace_api.Span:
        return (self._real() or _NO_OP).start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return (self._real() or _NO_OP).start_as_current_span(*args, **kwargs)


_NO_OP = trace_api.NoOpTracer()


def module_tracer(name: str) -> trace_api.Tracer:
    """The tracer for a module-level ``tracer = module_tracer(__name__)``."""
    return ModuleTracer(name)
