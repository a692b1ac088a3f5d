"""Human time spans (``30m``, ``24h``, ``7d``) for ``--since`` and retention settings.

One parser for the CLI and ``Settings`` so ``SPAN_STORE_MAX_AGE=7d`` and
``chatops stats --since 7d`` mean the same thing.
"""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SPEC = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)


def parse_timespan(text: str) -> timedelta:
    """Parse ``<number><unit>`` (unit s, m, h, d or w); ``ValueError`` carries a usable hint."""
    match = _SPEC.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a time span: use e.g. 30m, 24h or 7d")
    value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if value <= 0:
        raise ValueError(f"{text!r} is not a time span: it must be longer than zero")
    return timedelta(seconds=value)
