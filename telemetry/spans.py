"""The shape of a message's trace: root span, trace fields, and the send span.

A message enters in ``bot/client.py``; this module decides what its spans look
like. The root span starts from an empty context so one message never joins
another's trace; the fields every descendant should carry (command, guild,
author) travel in a context variable read by ``TraceFieldsProcessor``, not in
baggage, which would be sent to external APIs.
"""

from __future__ import annotations

from asyncio import CancelledError
from collections.abc import Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import TracebackType

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import Link, Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from telemetry import schema
from telemetry.schema import Outcome, truncate
from telemetry.tracer import module_tracer

tracer = module_tracer(__name__)


@dataclass
class MessageTrace:
    """The root span of one message and the fields its descendants inherit."""

    span: Span
    fields: dict[str, AttributeValue] = field(default_factory=dict)
    outcome: Outcome | None = None
    responded: bool = False

    @property
    def trace_id(self) -> str:
        return format_trace_id(self.span)

    def set_field(self, key: str, value: AttributeValue) -> None:
        """Set an attribute on the root and on every span started after this."""
        self.fields[key] = value
        self.span.set_attribute(key, value)

    def command_resolved(self, qualified_name: str, args: str) -> None:
        self.span.update_name(schema.ROOT_SPAN_COMMAND_PREFIX + qualified_name)
        self.set_field(schema.COMMAND, qualified_name)
        self.span.set_attribute(schema.COMMAND_ARGS, truncate(args, schema.ARGS_MAX_CHARS))

    def set_outcome(self, outcome: Outcome) -> None:
        """Record the outcome once; the first classification wins."""
        if self.outcome is None:
            self.outcome = outcome
            self.span.set_attribute(schema.OUTCOME, outcome.value)

    def record_error(self, exc: BaseException, outcome: Outcome = Outcome.ERROR) -> None:
        """Record a failure on the root, also one a handler caught.

        Status is ERROR only when the bot or a dependency failed; what the user
        caused keeps it unset so an error-rate query means "the bot broke".
        """
        self.set_outcome(outcome)
        self.span.set_attribute(schema.ERROR_TYPE, type(exc).__name__)
        self.span.set_attribute(schema.ERROR_MESSAGE, truncate(str(exc), schema.RESPONSE_MAX_CHARS))
        if outcome is Outcome.ERROR:
            # The stable convention: the failure's canonical class name, only when it failed.
            self.span.set_attribute(ERROR_TYPE, error_type(exc))
            self.span.record_exception(exc)
            self.span.set_status(Status(StatusCode.ERROR, type(exc).__name__))


def error_type(exc: BaseException) -> str:
    """``error.type`` as the semantic conventions define it: the fully-qualified class name
    (``aiohttp.client_exceptions.ClientConnectorError``; builtins by their bare name)."""
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


_current: ContextVar[MessageTrace | None] = ContextVar("chatops_message_trace", default=None)


def current_trace() -> MessageTrace | None:
    """The message trace of the running task, if any."""
    return _current.get()


class _RootSpan:
    """``root_span``'s context manager: a class, where ``@contextmanager`` costs a
    generator and six more Python calls, twice per message."""

    __slots__ = ("_fields", "_scope", "_token", "_trace")

    def __init__(self, scope: AbstractContextManager[Span], fields: dict[str, AttributeValue]):
        self._scope = scope
        self._fields = fields

    def __enter__(self) -> MessageTrace:
        message_trace = self._trace = MessageTrace(span=self._scope.__enter__())
        self._token = _current.set(message_trace)
        try:
            for key, value in self._fields.items():
                message_trace.set_field(key, value)
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return message_trace

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is None:
                self._trace.set_outcome(Outcome.OK)
            else:
                self._trace.record_error(exc)
        finally:
            _current.reset(self._token)
            self._scope.__exit__(exc_type, exc, tb)  # ends the span; an escaping error on it


def root_span(
    name: str,
    attributes: dict[str, AttributeValue],
    fields: dict[str, AttributeValue],
    *,
    links: Sequence[Link] = (),
) -> AbstractContextManager[MessageTrace]:
    """Open a root span from an empty parent context and make it current.

    Messages and interactions both enter here. ``links`` point at other traces
    this one continues without joining them (a button click links to the trace
    of the command that showed the button). Unhandled exceptions are recorded by
    the SDK; the caller classifies handled ones through ``MessageTrace``.
    """
    scope = tracer.start_as_current_span(
        name, context=Context(), attributes=attributes, links=links, end_on_exit=True
    )
    return _RootSpan(scope, fields)


@dataclass(slots=True)
class Attempt:
    """The HTTP attempt a ``discord.send`` span currently stands for (``telemetry.http_spans``).

    ``before`` is the span's attributes as they were when the attempt began, and
    ``first_event`` where its events begin, so a retry can move exactly what the
    attempt recorded to a span of its own.
    """

    name: str
    method: str
    url: str
    start_ns: int
    before: dict[str, AttributeValue]
    first_event: int
    end_ns: int = 0  # 0 while under way
    failed: bool = False  # an exception, or a 4xx/5xx answer: what a client retries
    raised: BaseException | None = None  # as the handler raised it


class Sending:
    """An open ``discord.send`` span, the attempt it has taken on (if any), and the
    context manager that keeps it current and offered to its first request."""

    __slots__ = ("_scope", "_token", "attempt", "span")

    def __init__(self) -> None:
        # Exceptions are recorded in __exit__: the attempt it stands for may have already.
        self._scope = tracer.start_as_current_span(schema.SEND_SPAN, record_exception=False)
        self.attempt: Attempt | None = None

    def __enter__(self) -> Span:
        self.span = span = self._scope.__enter__()
        self._token = _sending.set(self)
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _sending.reset(self._token)
        recorded = False
        attempt = self.attempt
        if attempt is not None:
            raised, attempt.raised = attempt.raised, None  # its traceback holds a frame
            # The attempt recorded its exception already: the same one escaping is not
            # recorded twice, nor the timeout aiohttp raises from its cancellation.
            recorded = raised is not None and (
                exc is raised
                or (
                    isinstance(raised, CancelledError) and getattr(exc, "__cause__", None) is raised
                )
            )
        if isinstance(exc, Exception) and not recorded:
            self.span.record_exception(exc, escaped=True)
        self._scope.__exit__(exc_type, exc, tb)


_sending: ContextVar[Sending | None] = ContextVar("chatops_sending", default=None)
# The ``discord.send`` span open in the running task, if any (a C call: once per request).
sending = _sending.get


def send_span() -> AbstractContextManager[Span]:
    """The ``discord.send`` span around a reply.

    It is also the reply's HTTP request to Discord: ``telemetry.http_spans`` records
    the request's attempt on it (kind CLIENT) instead of starting a child, so a
    reply costs one span, not two. A retry's earlier attempts, and any other
    request the send makes, become its children.
    """
    return Sending()


def record_response(span: Span, text: str) -> None:
    """Put the text sent back on the send span and on the root."""
    value = truncate(text, schema.RESPONSE_MAX_CHARS)
    span.set_attribute(schema.RESPONSE, value)
    message_trace = current_trace()
    if message_trace is not None:
        message_trace.span.set_attribute(schema.RESPONSE, value)
        message_trace.responded = True


def format_trace_id(span: Span) -> str:
    return trace.format_trace_id(span.get_span_context().trace_id)


class TraceFieldsProcessor(SpanProcessor):
    """Copies the message's trace fields onto every span started inside it."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        message_trace = _current.get()
        if message_trace is None or message_trace.span is span:
            return
        if message_trace.fields:
            span.set_attributes(message_trace.fields)
