"""Which redirects an external call follows: only those that stay on the origin it was sent to.

aiohttp follows redirects anywhere and keeps the request's headers, except
``Authorization``. An HTTP-backed command sends its endpoint's key in a header
of its own (Azure Functions' ``x-functions-key``) and ``traceparent``, so a
redirect to another host would hand both to that host, and its answer would be
posted to chat as if it were the endpoint's. ``ApiClient`` therefore asks aiohttp
not to follow redirects and follows them itself through ``next_hop``: within the
same scheme, host and port, up to ``MAX_REDIRECTS`` times; anywhere else, the
call fails before anything is sent there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yarl import URL

from commands.toolkit.failures import UserFacingError

log = logging.getLogger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5


class RefusedRedirect(UserFacingError):
    """The API redirected somewhere the call will not follow; safe to show."""


@dataclass(frozen=True)
class Hop:
    """One request of a call: where to, with which method and JSON body."""

    url: URL
    method: str
    body: Any = None


def location_of(status: int, headers: Mapping[str, str]) -> str | None:
    """The redirect target of a response, or None if it is not a redirect."""
    if status not in REDIRECT_STATUSES:
        return None
    return headers.get("Location") or None


def next_hop(origin: URL, hop: Hop, status: int, location: str, label: str) -> Hop:
    """The request after ``hop`` was answered ``status`` to ``location``; refused off ``origin``.

    A 303, or a 301/302 answering a POST, turns into a GET without a body, as
    browsers and aiohttp do; 307 and 308 repeat the request as it was.
    """
    target = hop.url.join(URL(location))
    if target.origin() != origin.origin():
        log.warning("%s redirected to %s; not followed (another origin)", label, target.origin())
        raise RefusedRedirect(
            f"The {label} redirected to another host; I only follow redirects on the same host."
        )
    to_get = status == 303 and hop.method != "HEAD"
    if to_get or (status in (301, 302) and hop.method == "POST"):
        return Hop(target, "GET")
    return Hop(target, hop.method, hop.body)
