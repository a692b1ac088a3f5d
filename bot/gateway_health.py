"""The bot's connection to Discord over time: a ``startup`` trace, and gateway health spans.

Start-up REST calls (``/users/@me``, the application, the gateway URL and the
websocket upgrade) used to make parentless one-span traces with nothing to say
what they were. ``Startup`` puts them, and the rest of discord.py's ``login`` (our
``setup_hook``), under one ``startup`` root span that lasts until the first READY.

"Was Discord slow?" needs the gateway's side too. ``GatewayHealth`` records one
``discord.gateway.health`` root span per interval (``GATEWAY_HEALTH_INTERVAL_S``):
the heartbeat latency (discord.py's HEARTBEAT to HEARTBEAT_ACK time), how many
disconnects, resumes, new sessions and invalid sessions happened in it, each also
as a timestamped span event. One query (``P95(discord.gateway.latency_ms)``, or
``SUM(discord.gateway.resumes)``) then answers it over days.

Invalid sessions are not a discord.py event: Discord's op 9 with ``d: false`` makes
discord.py raise ``ReconnectWebSocket(resume=False)`` (and nothing else does), so
``install`` wraps that exception's constructor to count it. A resumable op 9 looks
like an op 7 RECONNECT there, and is counted with the resumes that follow it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from discord import gateway
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from telemetry import schema
from telemetry.tracer import module_tracer

tracer = module_tracer(__name__)

HEALTH_SPAN = "discord.gateway.health"
STARTUP_SPAN = "startup"
DISCONNECT = "disconnect"
RESUMED = "resumed"
READY = "ready"
INVALID_SESSION = "invalid_session"
_COUNTED = {
    DISCONNECT: schema.GATEWAY_DISCONNECTS,
    RESUMED: schema.GATEWAY_RESUMES,
    READY: schema.GATEWAY_SESSIONS,
    INVALID_SESSION: schema.GATEWAY_INVALID_SESSIONS,
}
_MAX_EVENTS = 100  # per interval: a flapping connection must not grow one span forever

_listeners: list[Callable[[str], None]] = []
_installed = False


class Startup:
    """The ``startup`` root span: from login to the first READY.

    Under it: ``/users/@me``, the application, whatever ``setup_hook`` asks (the
    gateway URL), and the websocket upgrade of the first connection. It ends at the
    first READY (``ready``), or when start-up fails (``failed``).
    """

    def __init__(self, attributes: dict[str, AttributeValue] | None) -> None:
        self.span: Span | None = (
            None
            if attributes is None
            else tracer.start_span(STARTUP_SPAN, context=Context(), attributes=attributes)
        )

    @classmethod
    def none(cls) -> Startup:
        """No start-up under way (before login, or a bot that never logs in)."""
        return cls(None)

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        """Make the span current for a block (login; the first websocket upgrade)."""
        if self.span is None:
            yield
            return
        with trace.use_span(self.span, end_on_exit=False, record_exception=False):
            yield

    def ready(self) -> None:
        if self.span is not None:
            self.span.end()
            self.span = None

    def failed(self, exc: BaseException) -> None:
        if self.span is not None:
            self.span.record_exception(exc)
            self.span.set_status(Status(StatusCode.ERROR, type(exc).__qualname__))
            self.ready()


class GatewayHealth:
    """Gateway trouble counted per interval and flushed as one span.

    ``latency`` reads the current heartbeat latency in seconds (``Client.latency``:
    NaN before the first ACK).
    """

    def __init__(self, latency: Callable[[], float], interval_s: float) -> None:
        self._latency = latency
        self.interval_s = interval_s
        self._since = time.time_ns()
        self._counts: Counter[str] = Counter()
        self._events: list[tuple[str, int]] = []
        self._task: asyncio.Task[None] | None = None

    def note(self, what: str) -> None:
        """Something happened to the connection now (``disconnect``, ``resumed``...)."""
        self._counts[what] += 1
        if len(self._events) < _MAX_EVENTS:
            self._events.append((what, time.time_ns()))

    def flush(self) -> None:
        """End the interval: one span from its start to now, then start the next."""
        now = time.time_ns()
        attributes: dict[str, AttributeValue] = {
            key: self._counts[what] for what, key in _COUNTED.items()
        }
        latency = self._latency()
        if math.isfinite(latency):
            attributes[schema.GATEWAY_LATENCY_MS] = round(latency * 1000, 3)
        span = tracer.start_span(
            HEALTH_SPAN, context=Context(), attributes=attributes, start_time=self._since
        )
        for what, at in self._events:
            span.add_event(what, timestamp=at)
        span.end(end_time=now)
        self._since = now
        self._counts.clear()
        self._events.clear()

    def start(self) -> None:
        """Flush every ``interval_s`` until ``stop``; invalid sessions reach ``note``."""
        if self._task is None:
            _listeners.append(self.note)
            # Started inside start-up: a context of its own, so nothing inherits that span.
            self._task = asyncio.create_task(
                self._run(), name="gateway-health", context=contextvars.Context()
            )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.flush()

    async def stop(self) -> None:
        """Stop the timer and record the last, partial interval."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        with contextlib.suppress(ValueError):
            _listeners.remove(self.note)
        self.flush()


def _counting_init(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if getattr(self, "resume", True) is False:
            for listener in list(_listeners):
                listener(INVALID_SESSION)

    return __init__


def install() -> None:
    """Count invalid sessions (once per process); see the module docstring."""
    global _installed
    if _installed or not hasattr(gateway, "ReconnectWebSocket"):
        return
    reconnect = gateway.ReconnectWebSocket
    reconnect.__init__ = _counting_init(reconnect.__init__)  # type: ignore[method-assign]
    _installed = True
