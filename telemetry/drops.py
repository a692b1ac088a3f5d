"""Span loss, said once in a while instead of once per span.

When the OTLP endpoint is down or slow, the SDK's batch processor fills its
bounded queue and then logs "Queue full, dropping span" for every span, and the
exporter logs each failed batch. Both would flood the log exactly when it
matters. This filter counts those records and lets through one summary per
interval: how many spans were dropped and how many exports failed, and why.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

QUEUE_LOGGER = "opentelemetry.sdk._shared_internal"
EXPORTER_LOGGER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
REPORT_INTERVAL_S = 60.0

log = logging.getLogger(__name__)
_COUNT = re.compile(r"Queue full, dropping (\d+)")


class ExportTrouble(logging.Filter):
    """Counts dropped spans and failed exports; logs a summary at most every ``interval_s``."""

    def __init__(
        self, interval_s: float = REPORT_INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.clock = clock
        self.dropped_total = 0
        self.failed_total = 0
        self._dropped = 0
        self._failed = 0
        self._last_reason = ""
        self._last_report: float | None = None
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        message = record.getMessage()
        with self._lock:
            if message.startswith("Queue full"):
                # The SDK logs one record per span; the trace pipeline one per batch, with its size.
                counted = _COUNT.match(message)
                dropped = int(counted.group(1)) if counted else 1
                self._dropped += dropped
                self.dropped_total += dropped
            else:
                self._failed += 1
                self.failed_total += 1
                self._last_reason = message.splitlines()[0][:200]
            summary = self._take_summary()
        if summary:
            log.warning(summary)
        return False

    def _take_summary(self) -> str | None:
        now = self.clock()
        if self._last_report is not None and now - self._last_report < self.interval_s:
            return None
        self._last_report = now
        parts = []
        if self._dropped:
            parts.append(f"dropped {self._dropped} span(s): the export queue is full")
        if self._failed:
            parts.append(f"{self._failed} export(s) failed (last: {self._last_reason})")
        self._dropped = self._failed = 0
        return "; ".join(parts) + f" (next summary in {self.interval_s:.0f}s at most)"


def install(interval_s: float = REPORT_INTERVAL_S) -> ExportTrouble:
    """Attach one filter to the SDK's queue logger and the OTLP exporter's logger."""
    trouble = ExportTrouble(interval_s)
    for name in (QUEUE_LOGGER, EXPORTER_LOGGER):
        logging.getLogger(name).addFilter(trouble)
    return trouble
