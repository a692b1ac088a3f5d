"""A base for fake external APIs: a local aiohttp app that records requests, fails on cue."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Seen:
    """One request as the server saw it; ``at`` is ``time.monotonic()`` on arrival."""

    method: str
    path: str
    raw_path: str  # as sent, before the server decodes it
    query: dict[str, str]
    raw_query: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Fault:
    status: int | None = None
    delay: float = 0.0
    body: bytes | None = None
    content_type: str = "application/json"
    huge: bool = False


@dataclass
class FakeApi:
    """Subclasses add routes in ``routes()``; ``then(...)`` queues faults for the next requests."""

    requests: list[Seen] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def then(self, **fault: Any) -> Self:
        self.faults.append(Fault(**fault))
        return self

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        app = web.Application(middlewares=[self._middleware])
        app.add_routes(self.routes())
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append(
            Seen(
                request.method,
                request.path,
                request.raw_path.partition("?")[0],
                dict(request.query),
                request.raw_path.partition("?")[2],
                {k.lower(): v for k, v in request.headers.items()},
                await request.read(),
                time.monotonic(),
            )
        )
        fault = self.faults.popleft() if self.faults else None
        if fault is None:
            return await handler(request)
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.huge:
            return await _stream_forever(request)
        if fault.status is None and fault.body is None:
            return await handler(request)
        return web.Response(
            status=fault.status or 200,
            body=fault.body if fault.body is not None else b'{"message":"fault"}',
            content_type=fault.content_type,
        )


async def _stream_forever(request: web.Request) -> web.StreamResponse:
    """A chunked body with no Content-Length that would go on for 64 MiB."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    chunk = b"[" + b"1," * 32 * 1024
    try:
        for _ in range(1024):
            await response.write(chunk)
    except (ConnectionResetError, ConnectionError):
        pass
    return response
