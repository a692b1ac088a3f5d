"""What the limits on the HTTP ports did, in a few log lines however hard they are hit.

A public port meets scanners and attackers; a log line per shed connection or
malformed request would let them fill the disk. Everything is counted per
port and summed into at most one line per interval (``LimitReport``);
aiohttp's own per-request error log goes through the same counts
(``ServerLog``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import Counter
from typing import Any

from aiohttp.http import HttpProcessingError

log = logging.getLogger(__name__)


class LimitReport:
    """Counts what the limits did on one port and logs it, at most once per interval.

    The first event is logged at once, so an operator sees an attack begin;
    later ones are summed into one line per interval, so the log stays small
    however many connections are shed.
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.port: int | None = None
        self._pending: Counter[str] = Counter()
        self._last_logged: float | None = None
        self._flush: asyncio.TimerHandle | None = None

    def count(self, what: str) -> None:
        self._pending[what] += 1
        if self._flush is not None:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._last_logged is None or now - self._last_logged >= self.interval_s:
            self.flush()
        else:
            self._flush = loop.call_at(self._last_logged + self.interval_s, self.flush)

    def flush(self) -> None:
        self._flush = None
        if not self._pending:
            return
        parts = [f"{count} {what}" for what, count in sorted(self._pending.items())]
        log.warning("HTTP port %s: %s", self.port, "; ".join(parts))
        self._pending.clear()
        self._last_logged = asyncio.get_running_loop().time()

    def close(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self.flush()


class ServerLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server log for one port: what a client got wrong is counted, not logged.

    aiohttp logs each request it cannot parse as an ERROR with a traceback, so
    anyone who can reach the port could fill the log. A malformed request is
    counted in the port's ``LimitReport`` instead; a failure of one of our own
    handlers still logs its traceback, at most once per interval, and the rest
    are counted.
    """

    def __init__(self, report: LimitReport) -> None:
        super().__init__(logging.getLogger("aiohttp.server"))
        self.report = report
        self._last_traceback: float | None = None

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if level < logging.ERROR:
            super().log(level, msg, *args, **kwargs)
            return
        exc_info = kwargs.get("exc_info")
        error = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(error, HttpProcessingError):
            self.report.count("malformed requests refused (400)")
            return
        now = time.monotonic()
        if self._last_traceback is None or now - self._last_traceback >= self.report.interval_s:
            self._last_traceback = now
            super().log(level, msg, *args, **kwargs)
        else:
            self.report.count("more failed requests (500) like the one logged")
