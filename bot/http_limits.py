"""Limits on the bot's HTTP ports, so that slow or idle clients cannot take the bot off Discord.

The health server and the CircleCI receiver listen on ports that may be
reachable from outside. Left at aiohttp's defaults, a connection that never
finishes its request stays open for an hour; enough of them use up the
process's file descriptors, and then the bot can open nothing else, not even
its connection to Discord.

aiohttp's server has most of the knobs (``HttpLimits.handler_args``): its
keep-alive timer also runs from the moment a connection opens and does not
restart while the request head trickles in, so it is the deadline for a
complete request head; sizes of request lines and headers; lingering after an
early answer. It has no bound on open connections and no deadline on a
request's body; those are the two pieces here:

- ``ConnectionGuard``: at most ``max_connections`` per port. A new connection
  over the bound closes the oldest one that is waiting on its client (idle, or
  still sending its head or body), so a prober connecting now is served while
  slow clients are shed; if every connection is being answered, the new one
  gets a 503 and is closed.
- ``request_deadline``: a request must be received and answered within
  ``request_timeout_s`` of its head, or it gets a 408 and its connection closes.

What the limits did is logged by ``bot/http_log.py``, in at most one line per
interval however hard they are hit; so is asyncio pausing a port's accepts when
the process is out of descriptors (``AcceptFailures``), which it would log as a
traceback a second.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.http_log import LimitReport

log = logging.getLogger(__name__)

# What asyncio's event loop says when accept() fails for want of descriptors or memory.
ACCEPT_FAILED = "socket.accept() out of system resource"
REFUSED = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


@dataclass(frozen=True)
class HttpLimits:
    """What one HTTP port tolerates (docs/running.md, "The health and webhook ports")."""

    # Open connections per port; each costs a file descriptor.
    max_connections: int = 128
    # A complete request head within this of connecting or of the previous answer;
    # also how long an idle keep-alive connection stays open.
    head_timeout_s: float = 5.0
    # The body received and the answer ready within this of the head.
    request_timeout_s: float = 10.0
    # Connections the kernel holds until the bot accepts them. asyncio also accepts
    # up to this many at once, each a descriptor before the guard can shed one, so
    # it is small: a port holds at most about max_connections + 3 x backlog.
    backlog: int = 16
    # At most one log line per interval about what the limits did.
    log_interval_s: float = 60.0

    def handler_args(self) -> dict[str, Any]:
        """aiohttp's own knobs (``RequestHandler`` arguments, passed through ``AppRunner``)."""
        return {
            "keepalive_timeout": self.head_timeout_s,
            "max_line_size": 4096,
            "max_field_size": 4096,
            "max_headers": 32,
            # After an early answer (a 408, a 413), read what the client still sends
            # for at most this long before closing, instead of aiohttp's 10 s.
            "lingering_time": 1.0,
        }


class ConnectionGuard:
    """Keeps one port's open connections at or under ``limit``, shedding the slowest first."""

    def __init__(self, limit: int, report: LimitReport) -> None:
        self.limit = limit
        self.report = report
        # aiohttp's handler of each open connection, oldest first.
        self._open: dict[web.RequestHandler, asyncio.Transport] = {}
        self._requests: dict[web.RequestHandler, web.BaseRequest] = {}

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def protocols(self, server: web.Server) -> Callable[[], asyncio.Protocol]:
        """The protocol factory for ``loop.create_server``: aiohttp's, behind this guard."""
        return lambda: _Guarded(self, server)

    def make_room(self) -> bool:
        """Whether a new connection may open, after closing the oldest waiting one if need be."""
        for handler, transport in list(self._open.items()):
            if transport.is_closing():
                del self._open[handler]
        if len(self._open) < self.limit:
            return True
        for handler, transport in self._open.items():
            if self._waiting_on_client(handler):
                del self._open[handler]
                transport.close()
                self.report.count(f"slow connections closed to stay within {self.limit} open")
                return True
        self.report.count("connections refused with 503 (all busy)")
        return False

    def opened(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        self._open[handler] = transport

    def closed(self, handler: web.RequestHandler) -> None:
        self._open.pop(handler, None)

    @contextmanager
    def handling(self, request: web.BaseRequest) -> Iterator[None]:
        """While a request is handled, its connection is shed only if its body is still coming."""
        handler = request.protocol
        self._requests[handler] = request
        try:
            yield
        finally:
            self._requests.pop(handler, None)

    def _waiting_on_client(self, handler: web.RequestHandler) -> bool:
        request = self._requests.get(handler)
        return request is None or not request.content.is_eof()


class _Guarded(asyncio.Protocol):
    """One connection: admitted by the guard, then handled by aiohttp's own protocol."""

    def __init__(self, guard: ConnectionGuard, server: web.Server) -> None:
        self._guard = guard
        self._server = server
        self._handler: web.RequestHandler | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if not self._guard.make_room():
            transport.write(REFUSED)
            transport.close()
            return
        self._handler = self._server()
        self._guard.opened(self._handler, transport)
        self._handler.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._handler is not None:
            self._guard.closed(self._handler)
            self._handler.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._handler is not None:
            self._handler.data_received(data)

    def eof_received(self) -> None:
        # aiohttp answers a half-closed connection and then closes it (returns None).
        if self._handler is not None:
            self._handler.eof_received()

    def pause_writing(self) -> None:
        if self._handler is not None:
            self._handler.pause_writing()

    def resume_writing(self) -> None:
        if self._handler is not None:
            self._handler.resume_writing()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def request_deadline(guard: ConnectionGuard, timeout_s: float) -> Any:
    """Middleware: the body and the answer within ``timeout_s`` of the head, else 408 and close.

    aiohttp reads a body only when the handler asks for it, with no deadline, so
    the deadline wraps the handler; every handler on these ports answers at once.
    """

    @web.middleware
    async def deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
        with guard.handling(request):
            try:
                async with asyncio.timeout(timeout_s) as within:
                    return await handler(request)
            except TimeoutError:
                if not within.expired():
                    raise
                guard.report.count(f"requests not complete within {timeout_s:g}s (408)")
                return _closing(web.json_response({"error": "request timeout"}, status=408))
            except (ConnectionResetError, RuntimeError):
                if request.transport is not None:
                    raise
                # The client left, or was shed, mid-body (aiohttp's body stream raises
                # ConnectionResetError or RuntimeError): nobody is left to answer, and
                # aiohttp would log a traceback per connection.
                log.debug("client left during %s %s", request.method, request.path)
                return _closing(web.Response(status=400))

    return deadline


def _closing(response: web.Response) -> web.Response:
    response.force_close()
    return response


class GuardedSite(web.BaseSite):
    """aiohttp's ``TCPSite``, with every connection admitted through a ``ConnectionGuard``."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard, backlog: int
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self.guard = guard
        self._accept_failures: AcceptFailures | None = None  # set once listening

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self.guard.protocols(server), self._host, self._port, backlog=self._backlog
        )
        (self.listener,) = self._server.sockets
        self.guard.report.port = self.listener.getsockname()[1]
        self._fd = self.listener.fileno()
        self._accept_failures = AcceptFailures.add(loop, self._fd, self.guard.report)

    async def stop(self) -> None:
        if self._accept_failures is not None:
            self._accept_failures.remove(self._fd)
            self._accept_failures = None
        self.guard.report.close()
        await super().stop()


class AcceptFailures:
    """The loop's exception handler while ports are open: a port's failed accepts go to
    its ``LimitReport``.

    Out of descriptors, asyncio stops accepting on the port for a second and
    logs a traceback each time; the guard keeps the ports themselves within
    bounds, so this is the rest of the process using them up, and one counted
    line a minute says so. Anything else goes to the handler there was before.
    One per loop, shared by its ports, so they may close in any order.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._previous = loop.get_exception_handler()
        self._ports: dict[int, LimitReport] = {}  # listening socket's fd -> its report
        loop.set_exception_handler(self._handle)

    @classmethod
    def add(cls, loop: asyncio.AbstractEventLoop, fd: int, report: LimitReport) -> AcceptFailures:
        """The loop's instance (made and installed if need be), now reporting for ``fd``."""
        current = getattr(loop.get_exception_handler(), "__self__", None)
        handler = current if isinstance(current, cls) else cls(loop)
        handler._ports[fd] = report
        return handler

    def remove(self, fd: int) -> None:
        self._ports.pop(fd, None)
        if not self._ports and self._loop.get_exception_handler() == self._handle:
            self._loop.set_exception_handler(self._previous)

    def _handle(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        sock = context.get("socket")
        report = self._ports.get(sock.fileno()) if sock is not None else None
        if report is not None and context.get("message") == ACCEPT_FAILED:
            report.count("accepts paused for 1 s: the process is out of file descriptors")
        elif self._previous is not None:
            self._previous(loop, context)
        else:
            loop.default_exception_handler(context)
