"""One ``GET`` with back-off, shared by the CI API clients (BuildKite, CircleCI).

The retry loop only: 200 goes to the client's ``read``; 429 waits what the client's
rate-limit header says (seconds, plus half a second, at most ``MAX_BACKOFF_S``), 5xx
and the client's ``retry_on`` exceptions wait 1s, 2s, 4s... (capped the same); any
other status raises the client's ``refuse(status)``; a log line names each retry; after
``max_attempts`` the client's ``unavailable`` error. Auth headers, pagination, what a
body means and the error types stay in each client.

No library in the lock does this for an aiohttp session (azure-core's retry policies
need its own pipeline and request types; the OTLP exporter's back-off is private).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import aiohttp

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 300.0

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """How one API is retried: its name in logs and errors, its 429 header, its limits."""

    #: Names the API in the retry log line and the unavailable error ("BuildKite").
    service: str
    #: The 429 response header that says how many seconds to wait.
    rate_limit_header: str
    #: The error raised after the last attempt, given its message.
    unavailable: Callable[[str], Exception]
    sleep: Sleep = asyncio.sleep
    max_attempts: int = 6
    #: Exceptions (of the request or of ``read``) that count as a failed attempt.
    retry_on: tuple[type[Exception], ...] = (aiohttp.ClientError, TimeoutError)
    #: Where the retry line goes: the client's own logger.
    logger: logging.Logger = log

    async def get(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str],
        read: Callable[[aiohttp.ClientResponse], Awaitable[T]],
        refuse: Callable[[int], Exception],
        allow_redirects: bool = True,
    ) -> T:
        delay = 1.0
        for attempt in range(1, self.max_attempts + 1):
            try:
                async with session.get(
                    url, params=params, headers=headers, allow_redirects=allow_redirects
                ) as resp:
                    if resp.status == 200:
                        return await read(resp)
                    if resp.status != 429 and resp.status < 500:
                        raise refuse(resp.status)
                    wait = (
                        retry_after(resp.headers, self.rate_limit_header, delay)
                        if resp.status == 429
                        else delay
                    )
                    reason = f"HTTP {resp.status}"
            except self.retry_on as exc:
                wait, reason = delay, type(exc).__name__
            if attempt == self.max_attempts:
                break
            self.logger.info("%s %s; retrying in %.1fs", self.service, reason, wait)
            await self.sleep(wait)
            delay = min(delay * 2, MAX_BACKOFF_S)
        raise self.unavailable(f"{self.service} unavailable after {self.max_attempts} attempts")


def retry_after(headers: Mapping[str, str], header: str, fallback: float) -> float:
    """Seconds to wait from ``header`` (a number of seconds), or ``fallback`` if it is none."""
    try:
        return min(max(float(headers.get(header, "")), 0.0) + 0.5, MAX_BACKOFF_S)
    except ValueError:
        return fallback
