"""Discord's rate-limit bucket on an HTTP span, from its ``X-RateLimit-*`` answer headers.

Called by ``telemetry.http_spans`` for every answer, so it is kept to two header
lookups: an answer without ``X-RateLimit-Remaining`` (every host but Discord) costs
one lookup and nothing else. A 429 also records its scope (``user``, ``shared``,
``global``) and whether it was global. The waits discord.py makes on these buckets
are spans of their own (``bot/ratelimit_spans.py``).
"""

from __future__ import annotations

from typing import Any

from multidict import istr

from telemetry import schema

# multidict's case-insensitive keys: about a third cheaper to look up than a str.
_REMAINING = istr("X-RateLimit-Remaining")
_LIMIT = istr("X-RateLimit-Limit")


def record_bucket(span: Any, headers: Any, status: int) -> None:
    """``discord.ratelimit.remaining`` / ``.limit`` on ``span`` when the answer has them."""
    remaining = headers.get(_REMAINING)
    if remaining is None:
        return
    limit = headers.get(_LIMIT)
    if remaining.isdigit():
        span.set_attribute(schema.RATELIMIT_REMAINING, int(remaining))
    if limit is not None and limit.isdigit():
        span.set_attribute(schema.RATELIMIT_LIMIT, int(limit))
    if status == 429:
        span.set_attribute(schema.RATELIMIT_SCOPE, headers.get("X-RateLimit-Scope", "user"))
        span.set_attribute(schema.RATELIMIT_GLOBAL, headers.get("X-RateLimit-Global") == "true")
