"""Logging to stderr, each record carrying the trace and span id it was written in."""

from __future__ import annotations

import logging

FORMAT = (
    "%(asctime)s %(levelname)s %(name)s [trace=%(otelTraceID)s span=%(otelSpanID)s] %(message)s"
)


class _TraceIdDefaults(logging.Filter):
    """Fill the trace fields for records made before tracing is instrumented."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name in ("otelTraceID", "otelSpanID"):
            if not hasattr(record, name):
                setattr(record, name, "0")
        return True


class _NoVoiceNotice(logging.Filter):
    """discord.py warns at start-up that voice libraries are missing; this bot has no voice."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "voice will NOT be supported" not in record.getMessage()


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_TraceIdDefaults())
    handler.addFilter(_NoVoiceNotice())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("discord").setLevel(max(level, logging.INFO))
