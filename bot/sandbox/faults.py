"""Injected REST failures: rate limits, server errors and slow answers.

They exist so tests exercise discord.py's own retry code (and the spans around
it) rather than a mock of it: a 429 here carries exactly the headers and body
discord.py checks before it decides to sleep and retry instead of raising.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass

from aiohttp import web


@dataclass
class Fault:
    """One planned failure: matches ``method`` and the path regex ``times`` more times."""

    method: str
    path: re.Pattern[str]
    status: int | None
    times: int
    retry_after: float
    is_global: bool
    delay: float
    headers: dict[str, str] | None = None  # added to the real answer (status None)

    def matches(self, method: str, path: str) -> bool:
        """True when this fault applies to a request (``*`` matches any method)."""
        if self.times <= 0:
            return False
        if self.method not in ("*", method.upper()):
            return False
        return self.path.fullmatch(path) is not None


class Faults:
    """Planned failures, consumed first come first served."""

    def __init__(self) -> None:
        self._planned: list[Fault] = []

    def add(
        self,
        method: str,
        path: str,
        *,
        status: int | None,
        times: int,
        retry_after: float,
        is_global: bool,
        delay: float,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Plan a failure; ``path`` is a regex matched against the whole path after /api/v10."""
        self._planned.append(
            Fault(
                method.upper(),
                re.compile(path),
                status,
                times,
                retry_after,
                is_global,
                delay,
                headers,
            )
        )

    def take(self, method: str, path: str) -> Fault | None:
        """The next fault for this request, using one of its ``times``."""
        for fault in self._planned:
            if fault.matches(method, path):
                fault.times -= 1
                return fault
        return None


def json_response(status: int, body: object, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer whose Content-Type is exactly ``application/json``.

    discord.py only parses a body as JSON on that exact value, and aiohttp's
    ``json_response`` appends ``; charset=utf-8`` (FACTS.md).
    """
    all_headers = {"Content-Type": "application/json"}
    if headers:
        all_headers.update(headers)
    return web.Response(status=status, body=json.dumps(body).encode(), headers=all_headers)


def rate_limited(fault: Fault) -> web.Response:
    """A 429 as Discord sends it.

    ``Via`` is what tells discord.py this came from Discord and not from a
    Cloudflare ban; without it discord.py raises instead of retrying.
    """
    retry = fault.retry_after
    headers = {
        "Via": "1.1 google",
        "Retry-After": str(max(1, math.ceil(retry))),
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": f"{time.time() + retry:.3f}",
        "X-RateLimit-Reset-After": f"{retry:.3f}",
        "X-RateLimit-Bucket": "f4k3b0c4e7",
        "X-RateLimit-Scope": "global" if fault.is_global else "user",
    }
    if fault.is_global:
        headers["X-RateLimit-Global"] = "true"
    body = {
        "message": "You are being rate limited.",
        "retry_after": retry,
        "global": fault.is_global,
    }
    return json_response(429, body, headers)


def bucket_headers(
    *, remaining: int, limit: int, reset_after: float, bucket: str
) -> dict[str, str]:
    """The ``X-RateLimit-*`` headers Discord puts on every answer of a limited route.

    ``remaining=0`` makes discord.py wait ``reset_after`` seconds before the next
    request of that bucket, without any 429 (its pre-emptive wait).
    """
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        "X-RateLimit-Bucket": bucket,
    }


def server_error(status: int) -> web.Response:
    """A 4xx/5xx error body in Discord's shape."""
    return json_response(status, {"message": f"{status}: Injected failure", "code": 0})
