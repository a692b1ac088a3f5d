"""Discord rate-limit waits as spans: why a ``discord.send`` took 1.5 s with one fast POST.

discord.py paces REST calls itself. A 429 shows in the trace (a ``discord.send``
with the 429 attempt as a POST under it), but its *pre-emptive* waits do not: when
an answer says the bucket is empty (``X-RateLimit-Remaining: 0``), the request's
``Ratelimit`` sleeps ``X-RateLimit-Reset-After`` seconds before it lets the next
request of the bucket go, and a request arriving at an empty bucket waits for it;
during a global limit every request waits before it starts. None of this is an HTTP
request, so no span recorded it.

Here each such wait is a ``discord.ratelimit.wait`` span, a child of whatever is
current (``discord.send``, the command's root), with the bucket, ``retry_after``,
the scope and whether it was global. We wrap three places of discord.py 2.x's
``discord.http``, all internal, so ``install`` checks they exist and otherwise
does nothing (a discord.py that changes them loses the spans, not the bot):

- ``HTTPClient.get_ratelimit(key)``: remembers the bucket key of the request under
  way (a context variable: the request's own task);
- ``Ratelimit._refresh``: the sleep after a bucket ran out (pre-emptive);
- ``Ratelimit.acquire``: a request that finds the bucket empty and waits;
- ``HTTPClient.request``: a request that waits for a global limit to end.

The bucket's remaining and limit go on each HTTP span (``telemetry.ratelimit_headers``,
called from ``telemetry.http_spans``).
"""

from __future__ import annotations

import contextvars
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from discord import http as discord_http

from telemetry import schema
from telemetry.tracer import module_tracer

log = logging.getLogger(__name__)
tracer = module_tracer(__name__)

WAIT_SPAN = "discord.ratelimit.wait"
# What discord.py paces on its own when an answer empties a bucket: Discord's scopes
# (user, shared, global) name 429s; a pre-emptive wait is the bucket's.
SCOPE_BUCKET = "bucket"
SCOPE_GLOBAL = "global"

_bucket: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "discord_ratelimit_bucket", default=None
)
_waiting: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "discord_ratelimit_waiting", default=False
)
_installed = False


def _wait_span(retry_after: float, scope: str, *, is_global: bool) -> Any:
    attributes: dict[str, Any] = {
        schema.RATELIMIT_RETRY_AFTER: round(max(retry_after, 0.0), 3),
        schema.RATELIMIT_SCOPE: scope,
        schema.RATELIMIT_GLOBAL: is_global,
    }
    bucket = _bucket.get()
    if bucket:
        attributes[schema.RATELIMIT_BUCKET] = bucket
    return tracer.start_as_current_span(WAIT_SPAN, attributes=attributes)


def _traced_refresh(original: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    @functools.wraps(original)
    async def _refresh(self: Any) -> None:
        # A bucket discord.py knows nothing of (no headers yet) "refreshes" after 0 s:
        # nothing to explain. Inside a traced acquire, that span covers this sleep.
        if self.reset_after <= 0 or _waiting.get():
            return await original(self)
        token = _waiting.set(True)
        try:
            with _wait_span(self.reset_after, SCOPE_BUCKET, is_global=False):
                return await original(self)
        finally:
            _waiting.reset(token)

    return _refresh


def _traced_acquire(original: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    async def waited(self: Any) -> None:
        expires = self.expires
        now = self._loop.time()
        retry_after = (expires - now) if expires is not None else self.reset_after
        token = _waiting.set(True)
        try:
            with _wait_span(retry_after, SCOPE_BUCKET, is_global=False):
                return await original(self)
        finally:
            _waiting.reset(token)

    @functools.wraps(original)
    def acquire(self: Any) -> Awaitable[None]:
        # The common case, a bucket with tokens left, costs this one comparison and hands
        # back discord.py's own coroutine: no coroutine of ours per request.
        if self.remaining > 0 or self.is_expired() or _waiting.get():
            return original(self)
        return waited(self)

    return acquire


def _traced_get_ratelimit(original: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    @functools.wraps(original)
    def get_ratelimit(self: Any, key: str) -> Any:
        _bucket.set(key)
        return original(self, key)

    return get_ratelimit


def _traced_request(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def after_global_wait(self: Any, over: Any, route: Any, **kwargs: Any) -> Any:
        _bucket.set(getattr(route, "key", None))
        with _wait_span(0.0, SCOPE_GLOBAL, is_global=True) as span:
            started = self.loop.time() if hasattr(self, "loop") else None
            await over.wait()
            if started is not None:
                span.set_attribute(
                    schema.RATELIMIT_RETRY_AFTER, round(self.loop.time() - started, 3)
                )
        return await original(self, route, **kwargs)

    @functools.wraps(original)
    def request(self: Any, route: Any, **kwargs: Any) -> Awaitable[Any]:
        # No global limit (the common case): discord.py's own coroutine, none of ours.
        over = getattr(self, "_global_over", None)
        if over is not None and hasattr(over, "is_set") and not over.is_set():
            return after_global_wait(self, over, route, **kwargs)
        return original(self, route, **kwargs)

    return request


def install() -> bool:
    """Wrap discord.py's rate-limit waits (once per process); False if it cannot."""
    global _installed
    if _installed:
        return True
    ratelimit = getattr(discord_http, "Ratelimit", None)
    client = discord_http.HTTPClient
    needed = (
        (ratelimit, "_refresh"),
        (ratelimit, "acquire"),
        (client, "get_ratelimit"),
        (client, "request"),
    )
    if ratelimit is None or not all(hasattr(owner, name) for owner, name in needed):
        log.warning("this discord.py has no Ratelimit internals we know: waits are not traced")
        return False
    ratelimit._refresh = _traced_refresh(ratelimit._refresh)
    ratelimit.acquire = _traced_acquire(ratelimit.acquire)
    client.get_ratelimit = _traced_get_ratelimit(client.get_ratelimit)  # type: ignore[method-assign,assignment]
    client.request = _traced_request(client.request)  # type: ignore[method-assign,assignment]
    _installed = True
    return True
